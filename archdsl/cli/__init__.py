"""The `archdsl` command: build, check, summary, run, ops. Exit 0 ok, 1 diagnostic, 2 usage."""

from __future__ import annotations

import argparse
import difflib
import re
import sys

from .._version import __version__
from .args import DEFINE_HELP, THREADS_HELP, seed, threads
from .commands import COMMANDS, report_on_stderr
from .signals import interruptible, stdout_closed
from .train import add_train_flags, add_train_parser

__all__ = ["main", "make_parser"]

_EPILOG = """examples:
  archdsl build specs/resnet.arch -D depth=50 -o r50.onnx
  archdsl check specs/mlp.arch
  archdsl summary specs/resnet.arch -D depth=18 --json
  archdsl run specs/lenet5.arch --batch 4
  archdsl build specs/mlp.arch --train --optimizer adamw --lr 1e-3 -o step.onnx
  archdsl train examples/digits/digits.arch --data train.npz --val val.npz --epochs 20 -o digits.npz

exit status: 0 success, 1 a diagnostic about the input, 2 a usage error."""


class _Parser(argparse.ArgumentParser):
    """argparse reads `-1e-3` and `-inf` after a flag as an option name ("expected one argument"), and
    `-Inf` as -I with the value 'nf': a value of --lr, --clip-grad-value or --betas that is a negative number
    in any spelling is taken as a number (then refused with the flag's own message). The subcommands'
    parsers are of this class too."""

    def _parse_optional(self, arg_string):
        if _NEGATIVE_NUMBER.match(arg_string) and arg_string not in self._option_string_actions:
            return None  # a value (argparse's own test knows only -1 and -.5)
        return super()._parse_optional(arg_string)


_NEGATIVE_NUMBER = re.compile(r"^-(\d[\d_]*\.?[\d_]*|\.\d[\d_]*)([eE][-+]?\d[\d_]*)?$|^-(inf|infinity|nan)$",
                              re.IGNORECASE)

ONE_MODEL = "which model of the file (needed when it has several)"
SOME_MODELS = "only this model of the file (default: every model)"


def _common(p: argparse.ArgumentParser, model: str | None = ONE_MODEL, file_help: str = "the .arch spec") -> None:
    p.add_argument("file", help=file_help)
    p.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME=VALUE",
                   help=DEFINE_HELP)
    p.add_argument("-I", dest="include", action="append", default=[], metavar="DIR",
                   help="add DIR to the import search path (also $ARCHDSL_PATH)")
    if model:
        p.add_argument("--model", metavar="NAME", help=model)


def _optimize_flags(p: argparse.ArgumentParser, emits_ir: bool = False, report_only: bool = False) -> None:
    """-O0/-O1/-O2, --disable-pass, --report (archdsl/passes). `report_only`: the passes run only for --report
    (summary's table counts the model as written)."""
    only = (" (only with --report, whose pass table it shapes: the summary table counts the model as written)"
            if report_only else "")
    p.add_argument("-O", dest="opt_level", type=int, choices=(0, 1, 2), default=None, metavar="LEVEL",
                   help="optimization level: -O0 none, -O1 safe cleanups, -O2 everything (default"
                        + ("; --emit ir prints the unoptimized IR unless -O is given)" if emits_ir else ")") + only)
    p.add_argument("--disable-pass", dest="disabled_passes", action="append", default=[], metavar="NAME",
                   help="skip one optimization pass (repeatable); `archdsl passes` lists them" + only)
    p.add_argument("--report", action="store_true", help="print IR nodes (a layer is one until a pass splits it) and "
                   "weights (elements of parameters and buffers) before/after each pass that changed something, then "
                   "the FLOPs and the ONNX nodes as written and optimized (a linear that becomes MatMul + Add counts "
                   "its bias adds then)")


def make_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="archdsl", description="Compile .arch architecture specs to ONNX.",
                                 epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"archdsl {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    ap.subcommands = sub.choices  # name -> its parser, for main() to report a stray flag with the right usage

    b = sub.add_parser("build", help="compile a spec to an .onnx file",
                       description="Compile FILE.arch to ONNX (or print its IR with --emit ir). "
                                   "The output is written atomically: on any error an existing file is untouched.")
    _common(b, file_help="the .arch spec to compile")
    b.add_argument("-o", "--output", metavar="OUT.onnx",
                   help="output path (default: beside the spec, FILE with .onnx, or MODEL.onnx when the file has "
                        "several models; with --train MODEL.train.onnx); with --emit ir, the file for the IR "
                        "(default: stdout); - is stdout")
    b.add_argument("--opset", type=int, metavar="N",
                   help="ONNX opset (default: the newest the installed onnxruntime runs; at least 17)")
    b.add_argument("--seed", type=seed, default=0, metavar="S",
                   help="seed for the PyTorch-style initialization (default 0)")
    b.add_argument("--weights", metavar="W.npz", help="load parameters by name from .npz or .safetensors (a "
                   ".safetensors file is mapped and streamed into the model, not first read into memory)")
    b.add_argument("--emit", choices=("onnx", "ir"), default="onnx",
                   help="onnx (default) writes a model; ir prints the checked IR")
    b.add_argument("--external-data", action="store_true", default=None,
                   help="store weights of 1 KiB or more beside the model in OUT.onnx.data (smaller ones stay in "
                        "the model, as onnx does: a model with none writes no .data file; automatic past 2 GiB)")
    _optimize_flags(b, emits_ir=True)
    add_train_flags(b, building=True)

    c = sub.add_parser("check", help="parse, elaborate and shape-check; print each model's signature",
                       description="Parse, elaborate and shape-check every model (or --model); print inputs, "
                                   "outputs and parameter counts. Writes nothing.")
    _common(c, model=SOME_MODELS)

    s = sub.add_parser("summary", help="a table of layers: op, output shape, params, FLOPs",
                       description="Per-layer table with totals. Parameter counts follow torch's parameters() "
                                   "(BatchNorm running stats are buffers). FLOPs count the model as written: "
                                   "2 x multiply-accumulates, as papers cite them, plus the elementwise ops "
                                   "(-O2 may compute less: narrow_rows runs some layers on fewer "
                                   "positions). Never materializes weights.")
    _common(s, model=SOME_MODELS)
    s.add_argument("--json", action="store_true", help="print a JSON object (params, buffers, flops, layers, ...)")
    s.add_argument("--dim", action="append", default=[], metavar="SYM=N",
                   help="size a symbolic dim for the FLOPs (repeatable; e.g. --dim T=128; 0 too: a KV cache's first "
                        "step, --dim P=0); unsized ones count as 1, a batch of one")
    _optimize_flags(s, report_only=True)

    r = sub.add_parser("run", help="run a spec or an .onnx file on onnxruntime",
                       description="Run FILE.arch (compiled in memory) or FILE.onnx on onnxruntime with the given "
                                   "or random inputs; print each output's shape and stats and the median latency.")
    _common(r, file_help="a .arch spec (compiled in memory) or a compiled .onnx model")
    r.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                   help="feed an input from a .npy file, or an .npz (its array NAME, or its only one), cast to "
                        "the input's dtype where every value fits (numpy's float64 to float32; never floats to "
                        "integers, even whole ones); repeatable; the others are random, their symbolic dims taken "
                        "from the given inputs")
    r.add_argument("--batch", type=int, metavar="N",
                   help="size of every symbolic first dim, the batch (default 1); --dim NAME=N sizes one")
    r.add_argument("--dim", action="append", default=[], metavar="SYM=N",
                   help="size of another symbolic dim (default 8, or as in an --input)")
    r.add_argument("--repeat", type=int, default=10, metavar="N", help="timed runs for the median latency (default 10)")
    r.add_argument("--save", metavar="OUT.npz",
                   help="also write the outputs, by name, to an .npz (with the inputs that were fed, under "
                        "'input:NAME', so a random run can be reproduced)")
    r.add_argument("--provider", choices=("auto", "cpu", "cuda"), default="auto",
                   help="execution provider (auto: CUDA when present)")
    r.add_argument("--threads", type=threads, metavar="N",
                   help=THREADS_HELP)
    r.add_argument("--seed", type=seed, default=0, metavar="S",
                   help="seed for weights and random inputs (default 0)")
    r.add_argument("--weights", metavar="W.npz", help="load parameters by name from .npz or .safetensors")
    _optimize_flags(r)

    o = sub.add_parser("ops", help="list the ops of the registry with their signatures",
                       description="List every op: its signature and what it does.")
    o.add_argument("--markdown", action="store_true", help="print the language reference's op table")

    add_train_parser(sub)

    sub.add_parser("passes", help="list the optimization passes with their levels",
                   description="List every optimization pass: name, level (-O1/-O2) and what it rewrites. "
                               "'(inference)' marks the passes a train step (build --train, train) never runs: "
                               "it runs the -O1 cleanups, and at -O2 also narrow_rows on its forward graph.")
    bn = sub.add_parser("bench", help="benchmark compile time, node counts and latency against torch.onnx.export",
                        description="Same as python -m archdsl.bench; `archdsl bench --help` lists its options.",
                        add_help=False)
    bn.add_argument("bench_args", nargs=argparse.REMAINDER)

    d = sub.add_parser("docs", help="regenerate the op table of grammar/REFERENCE.md and specs/README.md",
                       description="Rewrite the generated parts of the docs from the op registry and the specs; "
                                   "--check only reports (exit 1) when they are stale.")
    d.add_argument("--check", action="store_true", help="report stale docs instead of writing them")
    d.add_argument("--root", metavar="DIR", help="repository root (default: the checkout this package runs from)")
    return ap


# other tools' spellings of a flag (torch scripts, Keras, the Hugging Face Trainer)
_SPELLINGS = {"--learning-rate": "--lr", "--learning_rate": "--lr", "--bs": "--batch-size",
              "--batch_size": "--batch-size", "--optim": "--optimizer", "--num-epochs": "--epochs",
              "--num_epochs": "--epochs", "--n-epochs": "--epochs", "--wd": "--weight-decay",
              "--weight_decay": "--weight-decay"}


def _unknown_hint(parser: argparse.ArgumentParser, argv: list[str], first: str) -> str:
    """What an unrecognized argument likely meant: another tool's spelling or a typo of a flag, or a value
    given to a flag that takes none (`--resume ckpt.npz`)."""
    flags = {o for a in parser._actions for o in a.option_strings}
    if first.startswith("--"):
        name = first.split("=", 1)[0]
        if _SPELLINGS.get(name) in flags:
            return f"; {parser.prog.split()[-1]} spells it {_SPELLINGS[name]}"
        words = {f[2:]: f for f in flags if f.startswith("--")}  # compared without the dashes: --bs is no --seed
        close = difflib.get_close_matches(name[2:], list(words), n=1, cutoff=0.75)
        return f"; did you mean '{words[close[0]]}'?" if close else ""
    no_value = {o: a for a in parser._actions if a.nargs == 0 for o in a.option_strings}
    after = next((argv[i - 1] for i, a in enumerate(argv) if a == first and i and argv[i - 1] in no_value), None)
    if after is not None:
        more = "; --checkpoint FILE names the checkpoint it reads" if no_value[after].dest == "resume" and \
            "--checkpoint" in flags else ""
        return f" ({after} takes no value{more})"
    return ""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # its own argument parser (python -m archdsl.bench); argparse would eat its flags
        from ..bench import main as bench_main
        return bench_main(argv[1:])
    ap = make_parser()
    args, extra = ap.parse_known_args(argv)
    if extra:  # said by the parser the flag was given to: a subcommand's usage lists its own flags
        after = args.command in argv and extra[0] in argv[argv.index(args.command) + 1:]
        parser = ap.subcommands[args.command] if after else ap
        parser.error(f"unrecognized arguments: {' '.join(extra)}{_unknown_hint(parser, argv, extra[0])}")
    if args.command is None:
        ap.print_help()
        return 2
    if getattr(args, "file", None) == "":  # `archdsl build ""` said " is a directory"
        ap.subcommands[args.command].error("the file argument is empty; give the path of a .arch spec" +
                                           (" or an .onnx model" if args.command == "run" else ""))
    return interruptible(lambda: _dispatch(args))


def _dispatch(args) -> int:
    if stdout_closed() and (what := _printed_result(args)):
        print(f"archdsl {args.command}: error: stdout is closed, and {what} prints its result there",
              file=sys.stderr)
        return 2
    if args.command == "passes":
        from ..passes import all_passes
        passes = all_passes()
        width = max(len(p.name) for p in passes)
        for p in passes:
            print(f"{p.name:<{width}}  -O{p.level}{' (inference)' if not p.in_train_steps else '':<13} {p.doc}")
        return 0
    if args.command == "docs":
        from .docs import cmd_docs
        return cmd_docs(args)
    return COMMANDS[args.command](args)


def _printed_result(args) -> str | None:
    """What prints a result to stdout, refused before any work where stdout is closed (`>&-`: print() drops
    the text): the command itself, --emit ir without -o, or a --report not sent to stderr. check's result is
    its exit status; build's, train's and run --save's are files."""
    if args.command in ("ops", "passes", "summary") or args.command == "run" and not args.save:
        return args.command
    if args.command == "build" and args.emit == "ir" and not args.output:
        return "--emit ir"
    return "--report" if getattr(args, "report", False) and not report_on_stderr(args) else None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
