"""The README's support table is generated from the registry and the tree, and CI fails when it
is stale (`python -m scripts.support_table --check`)."""
import subprocess
import sys

from scripts import support_table as S


def test_readme_table_is_up_to_date():
    result = subprocess.run([sys.executable, "-m", "scripts.support_table", "--check"], cwd=S.ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_a_stale_table_is_detected_and_every_registered_type_is_named():
    text = S.README.read_text()
    stale = text.replace("| BERT | text-encoder | bert |", "| BERT | text-encoder | |")
    assert stale != text and S.readme_with_table(stale) == text
    from core import registry
    named = set(S.MODEL_TYPES.values()) | set(S.PARTS)
    assert set(registry.FAMILIES) <= named, f"add display names for {sorted(set(registry.FAMILIES) - named)}"


def test_every_head_task_is_a_known_task():
    from core import registry
    unknown = {(t, task) for t, f in registry.FAMILIES.items() for task in f.heads if task not in registry.TASKS}
    assert not unknown, f"add these tasks to core/registry.py:TASKS: {sorted(unknown)}"
