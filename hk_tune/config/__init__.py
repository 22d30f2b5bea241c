"""How to run: a run config (one finetuning) and a search config (a space file), read from YAML
plus `key=value` overrides and checked by one validator before any model, data or Ray is touched.

    cfg = load_run_config("run.yaml", ["optim.lr=1e-4"])          # hk_tune.config.run
    space = load_space("search_spaces/quickstart.yaml")           # hk_tune.config.space_file

Every error names the file, the dotted key and what is allowed. Nothing here imports torch.
"""
