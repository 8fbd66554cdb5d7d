"""Generate text with a causal LM: a Hugging Face folder, e.g. the `hf/` export of a training run.

    python -m experiments.train --config=configs/gpt2_clm.py --workdir=/tmp/clm
    python -m experiments.generate --model=/tmp/clm/hf --prompts="The river,A hungry fox" --max_new_tokens=24
    python -m experiments.generate --model=/tmp/clm/hf --do_sample --top_p=0.9 --seed=0
"""
from absl import app, flags
import jax

flags.DEFINE_string("model", None, "Hugging Face causal-LM folder with its tokenizer files.")
flags.DEFINE_list("prompts", ["The river", "A hungry fox saw"], "Prompts (comma-separated).")
flags.DEFINE_integer("max_new_tokens", 24, "Tokens to generate per prompt.")
flags.DEFINE_bool("do_sample", False, "Sample instead of greedy decoding.")
flags.DEFINE_float("temperature", 1.0, "Sampling temperature.")
flags.DEFINE_integer("top_k", 50, "Top-k sampling.")
flags.DEFINE_float("top_p", 1.0, "Nucleus sampling.")
flags.DEFINE_integer("num_beams", 1, "Beam search width.")
flags.DEFINE_integer("seed", 0, "Sampling seed.")
FLAGS = flags.FLAGS

jax.config.parse_flags_with_absl()
flags.mark_flag_as_required("model")


def generate(folder, prompts, **options) -> list[str]:
    """Continuations of `prompts` (left-padded into one batch), decoded without special tokens."""
    from core.auto import AutoModelForCausalLM
    from core.tokenization import AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    batch = tokenizer(list(prompts), padding=True, return_tensors="np")
    out = model.generate(batch["input_ids"], attention_mask=batch["attention_mask"],
                         pad_token_id=tokenizer.pad_token_id, **options)
    return [tokenizer.decode(row, skip_special_tokens=True) for row in out]


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    options = dict(max_new_tokens=FLAGS.max_new_tokens, num_beams=FLAGS.num_beams)
    if FLAGS.do_sample:
        options.update(do_sample=True, temperature=FLAGS.temperature, top_k=FLAGS.top_k, top_p=FLAGS.top_p,
                       seed=FLAGS.seed)
    for prompt, text in zip(FLAGS.prompts, generate(FLAGS.model, FLAGS.prompts, **options)):
        print(f"--- {prompt!r}\n{text}\n")


if __name__ == "__main__":
    app.run(main)
