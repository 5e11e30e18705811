"""train"""

from __future__ import annotations

from backends.base import PRODUCTION, BadInputError, TrainingSpec, check_name
from console.commands.common import Context

# mrc's modules that this file's handlers run (release, rollout, evaluate …) are imported inside
# them: every command module is imported to build `mrc --help` and `mrc rollback`'s parser, which
# must not pay for them (--help: ~70 ms of CPU as is, ~300 ms with them at the top). Light modules
# that --help loads anyway are imported above.


def register(sub, common) -> None:
    p = common(sub.add_parser("train", help="launch training, stream its progress, register the candidate"))
    p.add_argument("model")
    p.add_argument("--data", metavar="DATASET@VERSION", help="training data (default: the model's train_data)")
    p.add_argument("--param", action="append", default=[], metavar="K=V", help="a training parameter (repeatable)")
    p.add_argument("--gpu", action="store_true", help="train on a GPU (CUDA) when one is there")
    p.add_argument("--backend", choices=["local", "k8s"], help="override the workspace's training backend")
    p.add_argument("--parent", metavar="VERSION", help="the version this one derives from (default: production)")
    p.add_argument("--no-candidate", action="store_true", help="register without pointing `candidate` at it")
    p.set_defaults(handler=cmd_train)


def parse_params(pairs: list[str]) -> dict:
    from console.training import parse_param_pairs

    return parse_param_pairs(pairs, where="--param ")


def cmd_train(ctx: Context) -> int:
    from console.training import train_and_register

    args = ctx.args
    ctx.require_write("train")
    check_name(args.model, "model")
    ws = ctx.workspace
    if args.backend:
        ws.config.setdefault("training", {})["backend"] = args.backend
    cfg = ws.model_config(args.model)
    data = args.data or cfg.get("train_data")
    if not data:
        raise BadInputError(f"{ws.config_path}: models.{args.model}.train_data is not set; pass --data NAME@VERSION")
    parent = args.parent
    if parent is None:
        try:
            parent = ctx.registry.get_pointers(args.model).get(PRODUCTION)
        except BadInputError:
            parent = None  # a new model has no production yet
    spec = TrainingSpec(args.model, data, parse_params(args.param), gpu=args.gpu, parent_version=parent,
                        label=cfg.get("label", ""), test_data=cfg.get("test_data", ""),
                        golden_data=cfg.get("golden_data", ""))

    def on_event(event: dict) -> None:
        if ctx.json:
            return
        if event.get("event") == "progress":
            ctx.progress(f"epoch {event['epoch']}/{event['epochs']} loss {event['loss']:.4f}", event["progress"])
        elif event.get("event") in ("log", "launched"):
            ctx.progress(event.get("message") or f"launched job {event.get('job')}")

    version = train_and_register(ws, spec, actor=ctx.actor, on_event=on_event, make_candidate=not args.no_candidate)
    ctx.emit(version.to_dict(), f"{args.model}: registered version {version.version} "
             f"(auc_roc {version.metrics.get('auc_roc', float('nan')):.4f}) as {','.join(version.aliases) or 'no alias'}")
    return 0
