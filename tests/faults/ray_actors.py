"""Finding the processes of a running search or run by their Ray actor class, to kill them by
pid (Ray's State API, which `ray[default]` provides)."""

from __future__ import annotations


def actors_of(class_name: str) -> dict[str, tuple[int, str]]:
    """Every actor of `class_name` this session's Ray knows of: actor id -> (pid, state)."""
    import ray
    from ray.util.state import list_actors

    # Ray by address: other local Ray instances may be running on this machine.
    actors = list_actors(address=ray.get_runtime_context().gcs_address,
                         filters=[("class_name", "=", class_name)], limit=10_000)
    return {actor.actor_id: (actor.pid, actor.state) for actor in actors}


def alive_actors(class_name: str, earlier: dict) -> dict[str, int]:
    """The live actors of `class_name` not among `earlier`: actor id -> pid."""
    return {actor: pid for actor, (pid, state) in actors_of(class_name).items()
            if actor not in earlier and state == "ALIVE"}
