"""Use a model trained with Rosetta in plain PyTorch code — no JAX involved.

    python -m experiments.load_in_torch --model=runs/gpt2_clm-<time>/hf

The exported folder is a Hugging Face folder; the generated PyTorch port (`ports.torch`) loads
it as an ordinary `torch.nn.Module`: this script continues a prompt, then fine-tunes the model
for a few steps with a torch optimizer on one sentence, to show that it is a module like any
other (train()/eval(), autograd, state_dict).
"""
from absl import app, flags

flags.DEFINE_string("model", None, "A Hugging Face folder with a causal LM (e.g. <workdir>/hf of the main job).")
flags.DEFINE_string("prompt", "We hold these truths", "Text to continue.")
flags.DEFINE_integer("max_new_tokens", 24, "Tokens to generate.")
flags.DEFINE_integer("steps", 5, "Fine-tuning steps of the demo (0 = none).")
flags.mark_flag_as_required("model")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    import torch

    from core.tokenization import AutoTokenizer   # numpy-only
    from ports.torch import AutoModelForCausalLM

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(FLAGS.model)
    model = AutoModelForCausalLM.from_pretrained(FLAGS.model)           # eval mode, like transformers
    print(f"{type(model).__name__}: {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"a {torch.nn.Module.__name__} subclass: {isinstance(model, torch.nn.Module)}")

    ids = torch.tensor([tokenizer(FLAGS.prompt)["input_ids"]])
    out = model.generate(ids, max_new_tokens=FLAGS.max_new_tokens, do_sample=False)
    print(f"greedy: {FLAGS.prompt!r} → {tokenizer.decode(out[0, ids.shape[1]:].tolist(), skip_special_tokens=True)!r}")

    if FLAGS.steps:
        text = "Government of the people, by the people, for the people, shall not perish from the earth."
        batch = torch.tensor([tokenizer(text)["input_ids"]])
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        model.train()                                                   # dropout on
        for step in range(1, FLAGS.steps + 1):
            logits = model(input_ids=batch).logits
            loss = torch.nn.functional.cross_entropy(logits[0, :-1], batch[0, 1:])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            print(f"torch fine-tuning step {step}: loss {loss.item():.4f}")
        model.eval()


if __name__ == "__main__":
    app.run(main)
