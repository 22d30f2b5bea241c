"""storage_path as an object-store URI, end to end against a real S3-compatible server on
loopback (moto's server): `hk-tune search` with `storage_path: s3://bucket/runs`, then
`hk-tune best s3://...`, `hk-tune resume s3://...` and `hk-tune train` on the best configuration.
"""

from __future__ import annotations

import io
import json
import os
import socket
from contextlib import redirect_stdout

import pytest
from test_search import tiny_space

from hk_tune import cli, storage

BUCKET = "hk-tune-test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The S3 settings are the standard AWS environment, set at import (collection) time: Ray's
# workers inherit the environment of the session's Ray, which starts after collection, and they
# open the bucket themselves. Nothing else in the suite talks to S3.
PORT = _free_port()
os.environ.update({
    "AWS_ENDPOINT_URL": f"http://127.0.0.1:{PORT}",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
})


@pytest.fixture(scope="module")
def s3_client():
    pytest.importorskip("moto.server")
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=PORT, verbose=False)
    server.start()
    client = boto3.client("s3")  # endpoint and keys from the environment above
    client.create_bucket(Bucket=BUCKET)
    yield client
    server.stop()


def keys(client, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def run_cli(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        status = cli.main(argv)
    return status, out.getvalue()


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_search_best_resume_and_train_with_s3_storage(
        s3_client, tmp_path, tiny_models, toy_data, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the local copy of the best configuration goes
    space = tiny_space(tmp_path, tiny_models, toy_data, num_samples=2, scheduler="none",
                       storage_path=f"s3://{BUCKET}/runs")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    folder = f"s3://{BUCKET}/runs/tiny"

    status, out = run_cli(["search", space, "--tracking-uri", uri, "--json"])
    assert status == 0, out
    final = json.loads(out.strip().splitlines()[-1])
    assert final["num_trials"] == 2 and final["path"] == folder
    assert final["best_config_path"] == str(tmp_path / "tiny_best_config.yaml")

    landed = keys(s3_client, "runs/tiny/")
    for name in ("search.json", "space.yaml", "summary.json", "best_config.yaml", "tuner.pkl"):
        assert f"runs/tiny/{name}" in landed, landed
    checkpoints = {key.split("/")[2] for key in landed if "/checkpoint_" in key}
    assert len(checkpoints) == 2, landed  # each trial's LoRA checkpoint, written by Tune
    assert not (tmp_path / "runs").exists() and not (tmp_path / "s3:").exists()

    status, out = run_cli(["best", folder, "--json"])
    assert status == 0, out
    assert json.loads(out.strip().splitlines()[-1])["num_trials"] == 2

    # Tune's pickles were signed in its staging folder and uploaded with their signatures; a
    # signature deleted from the bucket is a refusal.
    from hk_tune.search import trust

    for name in ("tuner.pkl", "searcher-state-"):
        assert any(key.startswith(f"runs/tiny/{name}") and key.endswith(trust.SUFFIX)
                   for key in landed), landed
    trust.verify_folder(folder)
    sig = next(key for key in landed if key.endswith(f"params.pkl{trust.SUFFIX}"))
    saved = s3_client.get_object(Bucket=BUCKET, Key=sig)["Body"].read()
    s3_client.delete_object(Bucket=BUCKET, Key=sig)
    with pytest.raises(trust.UntrustedFolder, match="did not sign"):
        trust.verify_folder(folder)
    s3_client.put_object(Bucket=BUCKET, Key=sig, Body=saved)

    # Resuming a finished search restores Tune's state from the bucket and runs nothing again.
    status, out = run_cli(["resume", folder, "--json"])
    assert status == 0, out
    assert json.loads(out.strip().splitlines()[-1])["num_trials"] == 2

    status, out = run_cli(["train", final["best_config_path"], "--json"])
    assert status == 0, out
    assert json.loads(out.strip().splitlines()[-1])["step"] == 4
    assert any("/checkpoint_" in key for key in keys(s3_client, "runs/tiny_best/"))


def test_storage_paths_join_and_resolve(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage.resolve("runs") == str(tmp_path / "runs")
    assert storage.join(storage.resolve("runs"), "a") == str(tmp_path / "runs" / "a")
    assert storage.resolve("s3://b/runs/") == "s3://b/runs"
    assert storage.join("s3://b/runs?endpoint_override=h:9000", "a", "x.json") == (
        "s3://b/runs/a/x.json?endpoint_override=h:9000")
    storage.write_text(storage.join(str(tmp_path), "new", "x.txt"), "hi")
    assert storage.read_text(tmp_path / "new" / "x.txt") == "hi"
    assert storage.exists(tmp_path / "new") and not storage.is_uri(tmp_path)
