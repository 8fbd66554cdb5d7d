"""Print Rosetta's support table against the classic Transformers table (scripts/seed_models.tsv).

    python -m scripts.support_table            # Markdown to stdout
    python -m scripts.support_table --missing  # only rows not supported yet

A model counts as supported when its model_type is registered in core/registry.py, and as
tested when tests/test_<family>.py exists; ports are counted when their generated files exist.
"""
from __future__ import annotations

import argparse
import csv
import pathlib

from core import registry

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Display names of the seed table → Hugging Face model_type.
MODEL_TYPES = {
    "BERT": "bert", "RoBERTa": "roberta", "XLM-RoBERTa": "xlm-roberta", "CamemBERT": "camembert",
    "DistilBERT": "distilbert", "ELECTRA": "electra", "ALBERT": "albert", "MPNet": "mpnet",
    "OpenAI GPT-2": "gpt2", "LLaMA": "llama",
}


def rows():
    with open(ROOT / "scripts" / "seed_models.tsv", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            model_type = MODEL_TYPES.get(row["model"])
            fam = registry.FAMILIES.get(model_type) if model_type else None
            package = fam.modeling.split(".")[2] if fam else None
            yield {
                "model": row["model"],
                "group": row["family"],
                "model_type": model_type or "",
                "flax": "yes" if fam else "",
                "tested": "yes" if package and (ROOT / "tests" / f"test_{package}.py").exists() else "",
                "torch port": "yes" if package and (ROOT / "ports" / "torch" / "models" / f"{package}.py").exists() else "",
                "tf port": "yes" if package and (ROOT / "ports" / "tf" / "models" / f"{package}.py").exists() else "",
                "heads": ", ".join(fam.heads) if fam else "",
            }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--missing", action="store_true", help="list only unsupported rows")
    args = parser.parse_args()
    table = [r for r in rows() if not (args.missing and r["flax"])]
    columns = list(table[0]) if table else []
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for r in table:
        print("| " + " | ".join(r[c] for c in columns) + " |")
    supported = sum(1 for r in rows() if r["flax"])
    print(f"\n{supported} of {sum(1 for _ in rows())} architectures supported.")


if __name__ == "__main__":
    main()
