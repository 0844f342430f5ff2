"""One validator step in its own process, built from validator flags the way ``text3d validator`` builds it.

    python -m tests.score_one_step OUT_JSON MESH_PLY PROMPT [VALIDATOR FLAGS...]

The reward model (``build_reward_model``) and the prompt sampler (``build_prompt_sampler``)
come from the flags (``--models tiny`` added); the chain and the network are faked at their
edge (``tests.test_validator_unit.FakeChain``, a scripted client answering MESH_PLY for
both miners), the sampler's draw is pinned to PROMPT and the step's random generator to a
fixed seed, so the step seed is the same in every process. Writes, per outcome, the score
(its float's hex: bit for bit), the contrast prompts the report lists, the step seed and
the prompt source used.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    import trimesh

    from text3d.protocol.mesh_codec import MeshFormat
    from text3d.reward.defences.canary import CanaryExpectations
    from text3d.settings import load_settings
    from text3d.validator.engine import Validator
    from text3d.validator.main import build_prompt_sampler, build_reward_model, open_state
    from text3d.validator.prompts import Task
    from tests.test_validator_defences import ScriptedClient
    from tests.test_validator_unit import OWN_HOTKEY, FakeChain, FakeWallet

    out, mesh_path, prompt, flags = argv[0], argv[1], argv[2], argv[3:]
    settings = load_settings("validator", ["--models", "tiny", *flags])
    config = settings.validator.model_copy(update={"state_path": Path(out).with_suffix(".state.json"),
                                                   "canary_every_steps": 0, "sample_size": 2})
    mesh = trimesh.load(mesh_path, process=False)
    sampler = build_prompt_sampler(config, random.Random(0))
    sampler.draw = lambda: Task(prompt=prompt, seed=7)  # type: ignore[method-assign]  # the same task everywhere
    validator = Validator(config, wallet=FakeWallet(), chain=FakeChain([OWN_HOTKEY, "m1", "m2"]),
                          client=ScriptedClient([{"m1": (mesh, MeshFormat.DRACO, 1.0),
                                                  "m2": (mesh, MeshFormat.PLY, 2.0)}]),
                          reward_model=build_reward_model(settings), state=open_state(settings, config), sampler=sampler,
                          rng=random.Random(11), canary=CanaryExpectations.for_models("tiny"))
    result = asyncio.run(validator.step())
    Path(out).write_text(json.dumps({
        "source": type(sampler.source).__name__,
        "step_seed": result.step_seed,
        "fault": result.fault,
        "outcomes": [{"uid": o.uid, "status": o.status, "score": float(o.report.score).hex() if o.report else None,
                      "distractors": o.report.distractors if o.report else None} for o in result.outcomes],
    }))


if __name__ == "__main__":
    main(sys.argv[1:])
