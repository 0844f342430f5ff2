"""What one step found: each queried miner's outcome, the step's result, and how an answer is judged.

``judge_answer`` turns a ``MinerAnswer`` (bytes already capped by ``text3d.validator.client``)
into a ``MinerOutcome`` and, when it decodes, a mesh: malformed headers and undecodable
bytes are the miner's fault (score 0); a ``MemoryError`` is ours (``ResourceExhausted``).
It runs in the validator's executor, never on the event loop.
"""

from dataclasses import asdict, dataclass, field
from typing import Any

from text3d.validator.client import MinerAnswer
from text3d.validator.prompts import Task
from text3d.protocol.errors import MeshDecodeError, MinerTransportError, ResourceExhausted
from text3d.protocol.limits import MeshLimits
from text3d.protocol.mesh_codec import decode_mesh
from text3d.protocol.wire import TextTo3DResponse

__all__ = ["MinerOutcome", "StepResult", "judge_answer"]


@dataclass
class MinerOutcome:
    """What one queried miner did this step.

    ``status``: ok | no_response | late | oversize | encoded | refused | malformed | invalid |
    duplicate (the same object as an earlier answer of this step) | repeat (the same object
    this miner sent for another prompt within the copycat window).
    """

    uid: int
    hotkey: str
    status: str
    score: float = 0.0
    detail: str = ""
    seed: int | None = None
    response_s: float | None = None
    payload_bytes: int = 0
    mesh_format: str | None = None
    generation_time_s: float | None = None
    report: Any = field(default=None, repr=False)

    def to_json(self) -> dict:
        data = {k: v for k, v in asdict(self).items() if k != "report"}
        data["report"] = self.report.to_dict() if self.report is not None else None
        return data


@dataclass
class StepResult:
    step: int
    task: Task | None
    outcomes: list[MinerOutcome]
    timing_s: dict[str, float]
    updated: bool  # False when a ValidatorFault (or a chain failure) kept every average unchanged
    fault: str | None = None
    weights: str | None = None  # what happened to weights this step, for the logs
    step_seed: int | None = None  # draws the secret rig and the contrast prompts
    rig: dict | None = None
    canary: str | None = None  # "ok", the failure, or None when not run this step
    alpha: float | None = None  # the moving average's factor this step folded scores in with
    averages: dict[int, tuple[float, float]] = field(default_factory=dict)  # uid -> (before, after) the step

    def to_json(self) -> dict:
        return {
            "step": self.step,
            "step_seed": self.step_seed,
            "rig": self.rig,
            "canary": self.canary,
            "task": asdict(self.task) if self.task else None,
            "updated": self.updated,
            "fault": self.fault,
            "weights": self.weights,
            "timing_s": self.timing_s,
            "alpha": self.alpha,
            "averages": {str(uid): {"before": before, "after": after} for uid, (before, after) in self.averages.items()},
            "miners": [outcome.to_json() for outcome in self.outcomes],
        }


def judge_answer(answer: MinerAnswer, hotkey: str, seed: int, limits: MeshLimits) -> tuple[MinerOutcome, Any]:
    """Executor job: the outcome of one answer and its decoded mesh (None unless status ok).

    Raises ``ResourceExhausted`` on a ``MemoryError``: running out of memory is the
    validator's problem, never the miner's.
    """
    outcome = MinerOutcome(
        uid=answer.uid, hotkey=hotkey, status=answer.status, detail=answer.detail, seed=seed,
        response_s=answer.elapsed_s, payload_bytes=len(answer.body),
    )
    if answer.status != "ok":
        return outcome, None
    try:
        response = TextTo3DResponse.from_http(answer.headers, answer.body)
        outcome.mesh_format = response.format.value
        outcome.generation_time_s = response.generation_time_s
        mesh = decode_mesh(response.payload, limits)
    except MinerTransportError as exc:
        outcome.status, outcome.detail = exc.status, str(exc)
        return outcome, None
    except MeshDecodeError as exc:
        outcome.status, outcome.detail = "invalid", str(exc)
        return outcome, None
    except MemoryError:
        raise ResourceExhausted(f"out of memory while decoding uid {answer.uid}'s answer") from None
    return outcome, mesh
