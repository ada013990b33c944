"""`archdsl build --train` (write a train-step model and its eval model) and `archdsl train` (run the loop)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .. import driver, files
from ..autodiff.optimizers import ADAM_BETAS, ADAM_EPS
from ..diagnostics import ArchError
from ..interrupts import settled
from .args import DEFINE_HELP, THREADS_HELP, seed, threads
from .commands import (
    announce,
    beside,
    default_output,
    empty_name,
    load_spec,
    output_path,
    read_files,
    warn,
    with_external_data,
)

__all__ = ["add_train_flags", "add_train_parser", "build_train", "cmd_train", "train_config",
           "train_flags_without_train"]


def add_train_flags(p: argparse.ArgumentParser, building: bool) -> None:
    """Loss and optimizer flags, shared by `build --train` and `train`."""
    g = p.add_argument_group("training" if building else "loss and optimizer")
    actions = []

    def flag(*names, **kw):
        actions.append(g.add_argument(*names, **kw))

    if building:
        g.add_argument("--train", action="store_true",
                       help="write a train-step model (forward, loss, gradients, optimizer update) and, beside "
                            "it, OUT.eval.onnx")
    flag("--loss", choices=("cross_entropy", "mse", "bce_with_logits", "model"), default=None,
         help="loss on the model's output and the data's labels (cross_entropy: logits [..., classes], int64 "
              "labels), or model: the model's own scalar output named loss, which the spec computes (e.g. "
              "cross_entropy(logits, y) + ...; the data then holds the model's inputs only). Default: model "
              "when the model has an output named loss, else cross_entropy")
    flag("--optimizer", choices=("sgd", "adam", "adamw"), default="adamw",
         help="torch.optim's update rule (default adamw)")
    flag("--lr", type=float, default=1e-3, metavar="LR", help="learning rate (default 1e-3)")
    flag("--momentum", type=float, default=0.0, metavar="M", help="sgd momentum (default 0)")
    flag("--nesterov", action="store_true", help="sgd with Nesterov momentum")
    flag("--dampening", type=float, default=0.0, metavar="D",
         help="sgd: the momentum buffer takes (1 - D) of each gradient after the first (torch's dampening; "
              "default 0); D in [0, 1], with --momentum > 0 and without --nesterov")
    flag("--amsgrad", action="store_true",
         help="adam/adamw: divide by the largest second moment so far (torch's amsgrad=True)")
    flag("--weight-decay", type=float, default=None, metavar="WD",
         help="weight decay (default 0; 0.01 for adamw, decoupled as in torch.optim.AdamW)")
    flag("--betas", type=float, nargs=2, default=ADAM_BETAS, metavar=("B1", "B2"),
         help="adam/adamw betas (default %s %s)" % ADAM_BETAS)
    flag("--eps", type=float, default=ADAM_EPS,
         help=f"adam/adamw epsilon (default {ADAM_EPS:g}; a 16-bit parameter's step is computed in float32, eps "
              "included, where torch's float16 Adam rounds 1e-8 to 0 and blows up; its moments are stored in its "
              "dtype, where in float16 a second moment below 6e-8 is 0: a larger eps, such as 1e-4, steadies tiny "
              "gradients)")
    flag("--label-smoothing", type=float, default=0.0, metavar="E", help="cross_entropy label smoothing")
    flag("--ignore-index", type=int, default=None, metavar="N",
         help="cross_entropy: labels equal to N (padding) count for nothing, in the loss and the accuracy "
              "(torch's ignore_index; no default: every label counts)")
    flag("--clip-grad-norm", type=float, default=None, metavar="MAX",
         help="scale the gradients so that their global 2-norm is at most MAX before the update "
              "(torch.nn.utils.clip_grad_norm_; default: no clipping)")
    flag("--clip-grad-value", type=float, default=None, metavar="V",
         help="clamp every gradient element to [-V, V] before the update (torch.nn.utils.clip_grad_value_; "
              "with --clip-grad-norm too, the values are clamped first; default: no clipping)")
    flag("--accumulate", type=int, default=1, metavar="N",
         help="gradient accumulation: one optimizer update per N batches, on the sum of their gradients / N "
              "(torch's (loss / N).backward() with opt.step() every N batches; an epoch's last batch updates "
              "with the group it closes, however short); the step takes a bool input `apply`. Default 1")
    flag("--freeze", action="append", default=[], metavar="PATTERN",
         help="leave these parameters as they are (torch's requires_grad_(False)): a name, a prefix such as "
              "'layer1', or a pattern such as '*.bias' or '*.base_layer' (a layer's parameters, as a prefix) "
              "(repeatable)")
    flag("--no-decay", action="append", default=[], metavar="PATTERN",
         help="train these parameters without weight decay (torch: a param group with weight_decay 0, usual for "
              "biases and norm weights): a name, a prefix, or a pattern such as '*.bias' (repeatable)")
    flag("--output-name", metavar="NAME", help="the model output the loss reads (default: the first), or with "
         "--loss model the one that is the loss (default: loss)")
    if building:  # for `build`: which of these were given without --train
        p.set_defaults(train_flags=[(a.option_strings[0], a.dest, a.default) for a in actions])


def train_flags_without_train(args) -> list[str]:
    """The loss and optimizer flags of a `build` that has no --train: they would change nothing."""
    if getattr(args, "train", False):
        return []
    return [flag for flag, dest, default in getattr(args, "train_flags", []) if getattr(args, dest) != default]


def settings_error(args, command: str) -> int | None:
    """Flag values no model makes right (a negative --lr, --betas 2 3, --nesterov without momentum, an
    unknown --disable-pass): a usage error, exit 2, before the spec is read."""
    from ..passes import passes_for
    try:
        if hasattr(args, "loss") and getattr(args, "train", True):  # `train`, or `build --train`
            train_config(args).validate()
        try:
            passes_for(0, getattr(args, "disabled_passes", ()))  # refuses an unknown name
        except ArchError as e:
            raise ArchError(f"--disable-pass: {e.message}") from None
    except ArchError as e:
        print(f"archdsl {command}: error: {e.message}", file=sys.stderr)
        return 2
    return None


def train_config(args):
    from ..autodiff import OptimConfig, TrainConfig
    opt = OptimConfig(args.optimizer, momentum=args.momentum, nesterov=args.nesterov,
                      weight_decay=args.weight_decay, betas=tuple(args.betas), eps=args.eps,
                      dampening=args.dampening, amsgrad=args.amsgrad)
    return TrainConfig(loss=args.loss, optimizer=opt, lr=args.lr, label_smoothing=args.label_smoothing,
                       ignore_index=args.ignore_index, clip_grad_norm=args.clip_grad_norm,
                       clip_grad_value=args.clip_grad_value, output=args.output_name,
                       freeze=tuple(args.freeze), accumulate=args.accumulate,
                       no_decay=tuple(args.no_decay))


def _options(args) -> driver.CompileOptions:
    level = getattr(args, "opt_level", None)
    return driver.CompileOptions(opset=getattr(args, "opset", None), seed=args.seed,
                                 weights=getattr(args, "weights", None), search_path=tuple(args.include),
                                 opt_level=2 if level is None else level,
                                 disabled_passes=tuple(getattr(args, "disabled_passes", ())))


def build_train(args, sources, mod) -> int:
    """The body of `archdsl build --train`: OUT.onnx (the step) and OUT.eval.onnx."""
    ct = driver.build_train(mod, args.model, _options(args), train_config(args), sources)
    warn(ct.graph, ct.unused, sources)
    out = Path(args.output) if args.output else default_output(args.file, f"{ct.eval_model.graph.name}.train.onnx")
    eval_out = beside(out, out.name[: -len(".onnx")] + ".eval.onnx" if out.suffix.lower() == ".onnx"
                      else out.name + ".eval.onnx", "the eval model")
    files.refuse_overwriting(with_external_data({"-o": out, "the eval model": eval_out}, args.external_data),
                             read_files(args, sources))
    written = driver.write_models([(ct.step_model, out), (ct.eval_model, eval_out)], args.external_data)
    with settled():  # written: an interrupt now would exit 130 over the new files
        data = [str(p) for p in written if any(p.name == q.name + ".data" for q in written)]  # -o a link: its target
        info = ct.info
        params = set(info.params)  # a list: a test per initializer was quadratic in the parameter count
        n = sum(int(_numel(t)) for t in ct.step_model.graph.initializer if t.name in params)
        accumulating = f", accumulating {info.config.accumulate} batches per update" if info.config.accumulate > 1 \
            else ""
        announce(f"wrote {out} (train step: {len(info.params)} parameters, {n:,} values, {len(info.state)} state "
                 f"tensors, {len(ct.step_model.graph.node)} nodes, {_loss_name(info)} + {info.config.optimizer.name}"
                 f"{accumulating}) and {eval_out}" + (f" + {', '.join(data)}" if data else ""), out)
    return 0


def _loss_name(info) -> str:
    return f"the model's own loss '{info.output}'" if not info.labelled else info.config.loss


def _numel(t) -> int:
    n = 1
    for d in t.dims:
        n *= d
    return n


def add_train_parser(sub) -> None:
    t = sub.add_parser(
        "train", help="train a spec on onnxruntime from .npz data",
        description="Build the train step of FILE.arch and run it on onnxruntime (CUDA when available): "
                    "DATA.npz holds one array per model input (by name) and `labels` (none when the spec "
                    "computes its loss). Prints per-epoch loss/accuracy, writes a checkpoint after every epoch "
                    "and the trained weights (-o) as "
                    ".npz or .safetensors; `archdsl build FILE --weights OUT` then gives the trained model.")
    t.add_argument("file", help="the .arch spec to train")
    t.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME=VALUE", help=DEFINE_HELP)
    t.add_argument("-I", dest="include", action="append", default=[], metavar="DIR",
                   help="add DIR to the import search path (also $ARCHDSL_PATH)")
    t.add_argument("--model", metavar="NAME", help="which model of the file")
    t.add_argument("--data", required=True, metavar="TRAIN.npz", help="training data: model inputs and labels")
    t.add_argument("--val", metavar="VAL.npz", help="held-out data, evaluated after every epoch")
    t.add_argument("--epochs", type=int, default=10, metavar="N",
                   help="passes over the data (default 10); 0 evaluates the starting weights (--weights, --resume's "
                        "checkpoint, or the initialization) on --data and --val and writes nothing")
    t.add_argument("--schedule", choices=("constant", "cosine", "linear", "step"), default="constant",
                   help="learning-rate schedule over the run (cosine: lr * (1 + cos(pi u)) / 2, as torch's "
                        "CosineAnnealingLR with T_max the run; linear: lr * (1 - u), toward 0), u the progress "
                        "(see --schedule-per); step: lr * gamma for each of the --milestones passed, as torch's "
                        "MultiStepLR (StepLR is milestones at every N); default constant")
    t.add_argument("--milestones", type=_milestones, metavar="N[,N...]",
                   help="--schedule step's milestones, increasing: the lr is multiplied by --gamma after epoch N "
                        "(after update N with --schedule-per batch), as torch's MultiStepLR")
    t.add_argument("--gamma", type=float, metavar="G",
                   help="--schedule step's factor at each milestone (default 0.1)")
    t.add_argument("--schedule-per", choices=("epoch", "batch"), default="epoch",
                   help="when the schedule moves: per epoch (u = (e - 1) / E for epoch e of E, the default) or "
                        "per batch (u = (s - 1) / S for update s of the run's S, as a scheduler stepped per "
                        "batch); the run is --epochs long, so resume with the same --epochs (a resume that changes the "
                        "schedule says what lr it runs at)")
    t.add_argument("--warmup", type=int, default=0, metavar="STEPS",
                   help="linear learning-rate warmup: update s (counted from 1 over the whole run) runs at "
                        "min(1, s / STEPS) times the schedule's lr (torch's LambdaLR with that factor, "
                        "stepped per batch; default 0: none)")
    t.add_argument("--patience", type=int, metavar="N",
                   help="early stopping: stop once N epochs have passed without a lower --val loss; -o then holds "
                        "the weights of the epoch with the lowest (written as it happens), the checkpoint the last "
                        "epoch's state (default: no early stopping)")
    t.add_argument("--batch-size", type=int, default=32, metavar="B", help="examples per step (default 32)")
    t.add_argument("--eval-batch-size", type=int, metavar="B",
                   help="examples per batch of the evaluation (--val, --epochs 0; default --batch-size): a loss that "
                        "mixes a batch's examples (a contrastive one) has another value at another size; a "
                        "per-example one only runs faster in bigger batches")
    t.add_argument("-o", "--output", default="weights.npz", metavar="W.npz",
                   help="trained parameters and buffers, .npz or .safetensors (default weights.npz)")
    t.add_argument("--checkpoint", metavar="CKPT.npz",
                   help="training state written after every epoch (default: OUTPUT with .ckpt.npz)")
    t.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    t.add_argument("--weights", metavar="W.npz", help="start from these parameters instead of the initialization")
    t.add_argument("--seed", type=seed, default=0, metavar="S", help="seed for the initialization, shuffling, dropout")
    t.add_argument("--provider", choices=("auto", "cpu", "cuda"), default="auto", help="execution provider")
    t.add_argument("--threads", type=threads, metavar="N",
                   help=THREADS_HELP)
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    add_train_flags(t, building=False)


_OTHER_FORMATS = {".onnx", ".arch", ".pt", ".pth", ".bin", ".ckpt", ".h5", ".pb", ".pkl", ".json", ".txt", ".npy"}


def _milestones(text: str) -> tuple[int, ...]:
    """--milestones 30,60: positive integers, increasing."""
    try:
        steps = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas (30,60), got {text!r}") from None
    if not steps or steps[0] < 1 or any(b <= a for a, b in zip(steps, steps[1:])):
        raise argparse.ArgumentTypeError(f"expected positive integers in increasing order, got {text!r}")
    return steps


def cmd_train(args, sources) -> int:
    from ..training.loop import LoopOptions, run_training
    from .run import check_spec_at
    if args.epochs < 0 or args.batch_size < 1 or (args.eval_batch_size is not None and args.eval_batch_size < 1):
        print("archdsl train: error: --epochs must be 0 (evaluate only) or more, --batch-size and --eval-batch-size "
              "at least 1", file=sys.stderr)
        return 2
    if args.patience is not None and args.patience < 1:
        print(f"archdsl train: error: --patience is a number of epochs, at least 1, got {args.patience}",
              file=sys.stderr)
        return 2
    if args.eval_batch_size is not None and not args.val and args.epochs:
        print("archdsl train: error: --eval-batch-size sizes the evaluation of --val (or of --epochs 0); without "
              "either it sets nothing", file=sys.stderr)
        return 2
    if args.patience is not None and not args.val:
        print("archdsl train: error: --patience needs --val (it watches the held-out loss)", file=sys.stderr)
        return 2
    # with --resume, --epochs 0 evaluates the checkpoint --checkpoint names
    idle = [flag for flag, given in (("--schedule", args.schedule != "constant"), ("--warmup", args.warmup),
                                     ("--patience", args.patience is not None),
                                     ("--checkpoint", args.checkpoint and not args.resume)) if given]
    if not args.epochs and idle:  # each was taken, and the starting weights evaluated as without it
        print(f"archdsl train: error: --epochs 0 evaluates the starting weights and trains nothing; "
              f"{', '.join(idle)} {'applies' if len(idle) == 1 else 'apply'} to training", file=sys.stderr)
        return 2
    if args.warmup < 0:
        print("archdsl train: error: --warmup is a number of steps, 0 or more", file=sys.stderr)
        return 2
    if (args.schedule == "step") != (args.milestones is not None) or \
            (args.gamma is not None and args.schedule != "step"):
        print("archdsl train: error: --schedule step takes its --milestones (and --gamma, default 0.1); they "
              "set nothing for another schedule", file=sys.stderr)
        return 2
    if args.schedule_per == "batch" and args.schedule == "constant":  # it moved nothing, unsaid
        print("archdsl train: error: --schedule-per batch moves a schedule, and the constant one has nothing to "
              "move (--schedule cosine, linear or step)", file=sys.stderr)
        return 2
    if args.gamma is not None and not (0 < args.gamma < float("inf")):
        print(f"archdsl train: error: --gamma must be a positive number, got {args.gamma:g}", file=sys.stderr)
        return 2
    if (status := settings_error(args, "train")) is not None:
        return status
    if args.resume and getattr(args, "weights", None):
        print("archdsl train: error: --resume continues from the checkpoint's weights; --weights would be "
              "ignored (give one of them)", file=sys.stderr)
        return 2
    if empty_name(args, "train", ("-o", "output"), ("--checkpoint", "checkpoint"), ("--data", "data"),
                  ("--val", "val"), ("--weights", "weights")):
        return 2
    if args.output == "-":  # build's -o - is stdout; train would have written files named - and -.ckpt.npz
        print("archdsl train: error: -o -: train writes its weights (and their checkpoint beside them) to files; "
              "give a file name (e.g. -o weights.npz)", file=sys.stderr)
        return 2
    if args.checkpoint == "-":  # it wrote a file named -
        print("archdsl train: error: --checkpoint -: the checkpoint is a file, read again by --resume; give a file "
              "name (e.g. --checkpoint run.ckpt.npz)", file=sys.stderr)
        return 2
    out = output_path(args.output, example="weights.npz")
    if str(out).startswith(("/dev/", "/proc/")):  # -o /dev/stdout > w.npz: w.npz, once (w.npz replaced, the link
        out = files.resolved(out)  # then led to "w.npz (deleted)", and the next better epoch wrote a file so named)
    if out.suffix.lower() in _OTHER_FORMATS:  # -o w.onnx got an .npz archive under that name
        print(f"archdsl train: error: -o {args.output}: the weights are written as .npz or .safetensors; give "
              "one of those suffixes", file=sys.stderr)
        return 2
    ckpt = output_path(args.checkpoint, "--checkpoint", "run.ckpt.npz") if args.checkpoint else \
        beside(out, out.stem + ".ckpt.npz", "the checkpoint", "--checkpoint")  # run.a.ckpt.npz
    if args.checkpoint and ckpt.suffix.lower() in (_OTHER_FORMATS - {".ckpt", ".bin"}) | {".safetensors"}:  # an
        # .npz went in there (.ckpt and .bin are names such a file may have had, and may be resumed from)
        print(f"archdsl train: error: --checkpoint {args.checkpoint}: the training state is written as an .npz; "
              "give that suffix", file=sys.stderr)
        return 2
    mod = load_spec(args, sources)
    if args.epochs:  # --epochs 0 writes nothing
        files.refuse_overwriting({"-o": out, "--checkpoint": ckpt},
                                 read_files(args, sources, **{"--data": args.data, "--val": args.val}))
        for path in (out, ckpt):
            files.probe_writable(path)
    from ..runtime import providers
    from ..training.data import check_data_file
    providers(args.provider)  # a provider this onnxruntime lacks, the data files: said before the compile
    for path in (args.data, args.val):
        if path:
            check_data_file(path)
    ct = driver.build_train(mod, args.model, _options(args), train_config(args), sources)
    warn(ct.graph, ct.unused, sources)
    started = time.time()
    opts = LoopOptions(data=args.data, val=args.val, epochs=args.epochs, batch_size=args.batch_size,
                       eval_batch_size=args.eval_batch_size, output=out,
                       checkpoint=ckpt, resume=args.resume, provider=args.provider, threads=args.threads,
                       seed=args.seed, quiet=args.quiet, schedule=args.schedule, warmup=args.warmup,
                       milestones=args.milestones or (), gamma=0.1 if args.gamma is None else args.gamma,
                       schedule_per=args.schedule_per, patience=args.patience,
                       check_sizes=lambda path, sizes: check_spec_at(mod, ct.graph.name, sizes, path),
                       weights_file=getattr(args, "weights", None))
    try:
        run_training(ct, opts)
    except ArchError as e:  # onnxruntime failing inside a node: the spec line it comes from, as run shows it
        if e.span is None and (span := sources.node_line(e.message)) is not None:
            raise ArchError(e.message, span, e.notes) from None
        raise
    except (KeyboardInterrupt, SystemExit) as e:  # "interrupted" (or SIGTERM's nothing) said nothing of the
        signalled = isinstance(e, KeyboardInterrupt) or isinstance(e.code, int) and e.code > 128  # checkpoint
        if signalled and ckpt.exists() and (args.resume or ckpt.stat().st_mtime >= started):
            print(f"note: {ckpt} holds the last finished epoch: the same command with --resume goes on from it",
                  file=sys.stderr)
        raise
    return 0
