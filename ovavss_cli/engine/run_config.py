"""A training run's configuration: the command-line options plus the recipe of the preset.

``TrainConfig`` is everything that decides what a run computes. It is written to ``RUN_DIR/config.json`` when the
run starts and stored in every checkpoint; ``--resume`` takes its values from there and refuses a command line
that would change them. Only settings that change how the run is executed, not what it computes, may differ
(:data:`OPERATIONAL_FIELDS`), and ``max_steps`` may grow (the decay steps are then re-placed for the new length).

``TrainRecipe`` holds the optimisation and data settings. ``r50`` is the reference recipe (ovavss-spec.md §7),
``swinb`` differs only in its short sides; ``tiny`` departs from it on purpose, value by value, so that the tiny
preset learns the generated data on a CPU within minutes (see :func:`tiny_recipe`). The recipe is printed when
a run starts and saved with the config.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config_json import from_dict
from ..errors import OvavssError
from ..models.convert import INIT_MODES
from .augment import SWIN_SHORT_EDGES, AugmentConfig
from .criterion import CriterionConfig
from .optim import OptimizerConfig, ScheduleConfig
from .point_sampling import ImportanceSamplingConfig

CONFIG_FILE = "config.json"
CONFIG_FORMAT = "ovavss-train-config/1"
MODELS: tuple[str, ...] = ("ovavss", "avsc")
#: Settings a resumed run may change: they affect speed, logging and storage, never the numbers computed.
OPERATIONAL_FIELDS: tuple[str, ...] = (
    "out",
    "device",
    "workers",
    "threads",
    "log_every",
    "checkpoint_every",
    "keep_checkpoints",
    "val_every",
    "val_clips",
)


@dataclass(frozen=True)
class TrainRecipe:
    """Optimiser, learning-rate schedule, augmentation, loss and training-data rules; defaults = the reference.

    ``schedule`` describes a run of ``schedule.max_iter`` steps; a run of another length keeps its decays at
    the same fractions of the run (:meth:`schedule_for`).
    """

    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    criterion: CriterionConfig = field(default_factory=CriterionConfig)
    # detectron2's DATALOADER.FILTER_EMPTY_ANNOTATIONS (True in the reference) drops training videos without any
    # annotated object: AVSS clips whose a_obj names no (non-ignored) sounding class. True keeps them instead.
    keep_empty_clips: bool = False
    # GT pixels of a class the clip's a_obj does not list (label noise) count as background, as the evaluation
    # zeroes them; False keeps them as objects.
    filter_gt_to_sounding: bool = True

    def schedule_for(self, max_steps: int) -> ScheduleConfig:
        """The schedule of a ``max_steps`` run: decay steps scaled by ``max_steps / schedule.max_iter``."""
        scale = max_steps / self.schedule.max_iter
        steps = tuple(min(max_steps, round(step * scale)) for step in self.schedule.steps)
        return replace(self.schedule, max_iter=max_steps, steps=steps)


def reference_recipe() -> TrainRecipe:
    """OV_AVSS_R50.yaml: AdamW 1e-4 (backbone x0.1), wd 0.05, clip 0.01, 96,228 steps, short side {240, 360, 480}."""
    return TrainRecipe()


def swinb_recipe() -> TrainRecipe:
    """OV_AVSS_SwinB.yaml: the R50 recipe with short sides {240, 360}."""
    return TrainRecipe(augment=AugmentConfig(short_edges=SWIN_SHORT_EDGES))


def tiny_recipe() -> TrainRecipe:
    """For the tiny preset on generated data (64x96 frames), on a CPU. Departures from the reference, and why:

    * lr 1e-3 and backbone x1.0 (reference 1e-4, x0.1): the tiny model starts from random weights, not from
      Mask2Former COCO. Measured with ``bench/learning_curve.py`` (24 generated training clips, 8 held out,
      batch 2, 400 steps): held-out class-agnostic IoU 0.96 with these values, 0.82 with the reference's (0.88 at
      best, step 150); lr 1e-3 with the backbone at x0.1 learnt less than either (0.57 vs 0.91 after 120 steps);
    * 2,000 steps (reference 96,228), decays at the same 3/4 and 11/12 of the run;
    * short sides {64, 96, 128} (reference {240, 360, 480}): the generated frames are 64 px high;
    * 1,024 loss and matcher points (reference 12,544): the tiny masks have few pixels to sample.
    """
    return TrainRecipe(
        optimizer=OptimizerConfig(base_lr=1e-3, backbone_lr_multiplier=1.0),
        schedule=ScheduleConfig(max_iter=2000, steps=(1500, 1833)),
        augment=AugmentConfig(short_edges=(64, 96, 128)),
        criterion=CriterionConfig(matcher_points=1024, sampling=ImportanceSamplingConfig(num_points=1024)),
    )


#: Preset size (the part after "<model>-") -> its recipe.
RECIPES: dict[str, typing.Callable[[], TrainRecipe]] = {
    "r50": reference_recipe,
    "swinb": swinb_recipe,
    "tiny": tiny_recipe,
}


def preset_name(model: str, preset: str) -> str:
    """``--preset tiny`` -> ``ovavss-tiny``; a full name (``ovavss-tiny``) is kept."""
    return preset if preset.startswith(f"{model}-") else f"{model}-{preset}"


def recipe_for(preset: str) -> TrainRecipe:
    size = preset.split("-", 1)[-1]
    if size not in RECIPES:
        raise OvavssError(f"--preset: no training recipe for '{preset}' (known sizes: {', '.join(RECIPES)})")
    return RECIPES[size]()


def default_checkpoint_every(max_steps: int) -> int:
    """Every 2,000 steps as the reference, but at least ~10 checkpoints on shorter runs (and never under 100)."""
    return min(2000, max(100, max_steps // 10))


def default_log_every(max_steps: int) -> int:
    """Every step on runs up to 10,000 steps, every 20th on longer ones."""
    return 1 if max_steps <= 10_000 else 20


@dataclass
class TrainConfig:
    """One training run. ``None`` fields are filled from the preset in ``__post_init__``: ``preset`` becomes a full
    name (``tiny`` -> ``ovavss-tiny``), ``recipe`` the preset's, ``max_steps`` the recipe's length, ``out``
    ``runs/<preset>``, and the checkpoint and log periods follow from the run's length."""

    data: str
    split: str | None = None
    model: str = "ovavss"
    preset: str = "r50"
    init: str | None = None
    init_mode: str | None = None  # a Mask2Former --init: "reference" (None: as the official checkpointer) | "full"
    vggish: str | None = None
    out: str | None = None
    seed: int = 42
    batch_size: int = 1
    max_steps: int | None = None
    amp: bool = False
    checkpoint_every: int | None = None
    keep_checkpoints: int = 3
    log_every: int | None = None
    val_every: int = 0  # 0: no periodic validation
    val_clips: int = 0  # 0: every val clip of the split
    device: str = "auto"
    workers: int = 0  # DataLoader worker processes (0: load in the training process)
    threads: int | None = None  # torch CPU threads (None: torch's default)
    task_options: dict[str, Any] = field(default_factory=dict)  # model-specific settings (--task-option KEY=VALUE)
    recipe: TrainRecipe | None = None

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise OvavssError(f"--model: must be one of {', '.join(MODELS)}, got '{self.model}'")
        self.preset = preset_name(self.model, self.preset)
        if self.recipe is None:
            self.recipe = recipe_for(self.preset)
        if self.max_steps is None:
            self.max_steps = self.recipe.schedule.max_iter
        if self.checkpoint_every is None:
            self.checkpoint_every = default_checkpoint_every(self.max_steps)
        if self.log_every is None:
            self.log_every = default_log_every(self.max_steps)
        if self.out is None:
            self.out = f"runs/{self.preset}"
        minimums = {
            "batch_size": 1,
            "max_steps": 1,
            "checkpoint_every": 1,
            "keep_checkpoints": 1,
            "log_every": 1,
            "val_every": 0,
            "val_clips": 0,
            "workers": 0,
        }
        for name, minimum in minimums.items():
            if getattr(self, name) < minimum:
                raise OvavssError(f"--{name.replace('_', '-')}: must be >= {minimum}, got {getattr(self, name)}")
        if self.threads is not None and self.threads < 1:
            raise OvavssError(f"--threads: must be >= 1, got {self.threads}")
        if self.init_mode is not None and self.init_mode not in INIT_MODES:
            raise OvavssError(f"--init-mode: must be one of {', '.join(INIT_MODES)}, got '{self.init_mode}'")

    @property
    def run_dir(self) -> Path:
        return Path(self.out)

    @property
    def schedule(self) -> ScheduleConfig:
        return self.recipe.schedule_for(self.max_steps)


# ------------------------------------------------------------------------------------------ JSON form


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    return {"format": CONFIG_FORMAT, **dataclasses.asdict(config)}


def config_from_dict(data: Mapping[str, Any], where: str = "config") -> TrainConfig:
    data = dict(data)
    if data.pop("format", CONFIG_FORMAT) != CONFIG_FORMAT:
        raise OvavssError(f"{where}: not an ovavss training config (format {data.get('format')!r})")
    return from_dict(TrainConfig, data, where)


def config_json(config: TrainConfig) -> str:
    return json.dumps(config_to_dict(config), indent=2) + "\n"


def read_config(path: Path) -> TrainConfig:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OvavssError(f"no {CONFIG_FILE}: not a training run folder", path=path.parent) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise OvavssError(f"unreadable training config ({error})", path=path) from None
    return config_from_dict(data, str(path))


# ------------------------------------------------------------------------------------------ from the CLI


def _absolute(path: str | None) -> str | None:
    return None if path is None else str(Path(path).expanduser().resolve())


def new_config(options: Mapping[str, Any]) -> TrainConfig:
    """A new run's config from command-line options; ``None`` means "not given" (the default applies)."""
    given = {key: value for key, value in options.items() if value is not None}
    if "data" not in given:
        raise OvavssError("--data is required: the dataset root to train on")
    config = TrainConfig(**given)
    for key in ("data", "split", "init", "vggish", "out"):
        setattr(config, key, _absolute(getattr(config, key)))
    return config


def resumed_config(saved: TrainConfig, options: Mapping[str, Any]) -> TrainConfig:
    """The saved config with the operational options (and a longer ``max_steps``) given on the command line.

    Any other given option must equal the saved value: a resumed run computes what the run started to compute.
    """
    given = {key: value for key, value in options.items() if value is not None}
    if "preset" in given:
        given["preset"] = preset_name(given.get("model", saved.model), given["preset"])
    for key in ("data", "split", "init", "vggish", "out"):
        if key in given:
            given[key] = _absolute(given[key])
    updates = {}
    for key, value in given.items():
        old = getattr(saved, key)
        if key in OPERATIONAL_FIELDS:
            updates[key] = value
        elif key == "max_steps" and value != old:
            if value < old:
                raise OvavssError(f"--max-steps: the run is configured for {old} steps; a resumed run may only grow")
            updates[key] = value
        elif value != old:
            raise OvavssError(
                f"--{key.replace('_', '-')} {value!r} differs from the run's {CONFIG_FILE} ({old!r}); "
                "a resumed run keeps its configuration (only --max-steps may grow)"
            )
    return replace(saved, **updates)


def describe_recipe(config: TrainConfig) -> list[str]:
    """The recipe in a few human-readable lines (printed when a run starts)."""
    recipe, schedule = config.recipe, config.schedule
    opt, crit, aug = recipe.optimizer, recipe.criterion, recipe.augment
    sampling = crit.sampling
    return [
        f"optimiser: AdamW lr {opt.base_lr:g} (backbone x{opt.backbone_lr_multiplier:g}), "
        f"weight decay {opt.weight_decay:g}, full-model gradient clip {opt.grad_clip_norm:g}",
        f"schedule: {schedule.max_iter} steps, lr x{schedule.gamma:g} after steps "
        f"{', '.join(map(str, schedule.steps))}",
        f"augmentation: short side {{{', '.join(map(str, aug.short_edges))}}} (long side <= {aug.max_size}), "
        f"flip p={aug.flip_prob:g}, per clip",
        f"loss: {crit.class_weight:g} ce + {crit.mask_weight:g} mask + {crit.dice_weight:g} dice, no-object weight "
        f"{crit.no_object_weight:g}, {crit.matcher_points} matcher points, {sampling.num_points} loss points "
        f"(oversample {sampling.oversample_ratio:g}, importance {sampling.importance_sample_ratio:g}), "
        f"deep supervision {'on' if crit.deep_supervision else 'off'}",
        f"data: {'keep' if recipe.keep_empty_clips else 'drop'} clips without a sounding object, GT outside a_obj "
        f"{'is background' if recipe.filter_gt_to_sounding else 'kept'}",
    ]


def refuse_options_without_effect(config: TrainConfig, options: Mapping[str, Any]) -> None:
    """One line for an option given on the command line that this run would silently ignore."""
    if options.get("val_clips") is not None and not config.val_every:
        raise OvavssError("--val-clips: only with --val-every N (this run never validates)")
    if options.get("init_mode") is not None and (config.init is None or Path(config.init).suffix == ".safetensors"):
        raise OvavssError("--init-mode: only with a Mask2Former --init (.pkl); an ovavss .safetensors loads as it is")


def command_config(options: Mapping[str, Any], resume: bool) -> TrainConfig:
    """``ovavss train``'s config: a new one, or with ``resume`` the one saved in the run folder (``--out``, default
    ``runs/<preset>``) updated by :func:`resumed_config`; options it would ignore are refused."""
    if not resume:
        config = new_config(options)
    else:
        out = options.get("out")
        if out is None:
            out = f"runs/{preset_name(options.get('model') or 'ovavss', options.get('preset') or 'r50')}"
        run_dir = Path(out).expanduser().resolve()
        saved = read_config(run_dir / CONFIG_FILE)
        config = resumed_config(saved, {**options, "out": str(run_dir)})
    refuse_options_without_effect(config, options)
    return config


def parse_task_options(pairs: Sequence[str] | None) -> dict[str, Any] | None:
    """``["key=value", ...]`` -> ``{key: value}``, each value read as JSON when it parses (``3``, ``true``, ``"x"``)
    and kept as text otherwise; ``None`` when nothing was given."""
    if not pairs:
        return None
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise OvavssError(f"--task-option: expected KEY=VALUE, got {pair!r}")
        try:
            options[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            options[key.strip()] = text
    return options


def task_option_value(key: str, value: Any, default: Any) -> Any:
    """A ``--task-option`` value checked against the type of the setting's default (ints pass for floats)."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default)) and not isinstance(value, bool)
    if not ok:
        raise OvavssError(f"--task-option {key}: expected a {type(default).__name__}, got {value!r}")
    return float(value) if isinstance(default, float) else value
