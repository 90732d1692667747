"""Run every benchmark (``benchmarks/bench_*.py``) or the named ones: ``make bench NAME=divd``."""
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(names):
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if any(n in s.stem for n in names)]
        if not scripts:
            print(f"no benchmark matches {names}; available: {[s.stem for s in HERE.glob('bench_*.py')]}")
            return 2
    failed = []
    for script in scripts:
        print(f"== {script.stem}", flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=HERE.parent).returncode != 0:
            failed.append(script.stem)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
