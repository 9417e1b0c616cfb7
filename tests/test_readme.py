"""The README's set-up commands are the ones CI runs, and CI runs them in a fresh environment."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Set up (two commands)", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip()]


def ci_commands() -> list[str]:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    tail = script.split("# --- the README's two commands ---", 1)[1]
    return [line.strip() for line in tail.splitlines() if line.strip() and not line.startswith("#")]


def test_ci_runs_exactly_the_readme_commands():
    commands = readme_setup_commands()
    assert len(commands) == 2 and "pip install" in commands[0] and "pytest" in commands[1]
    assert ci_commands() == commands


def test_ci_builds_a_fresh_virtual_environment_first():
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    before = script.split("# --- the README's two commands ---", 1)[0]
    assert re.search(r"python3? -m venv ", before) and "--system-site-packages" not in script
    assert "/bin/activate" in before
