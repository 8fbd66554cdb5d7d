"""The shared shape of every training config; experiment files start from `base_config()`.

Every field exists here, so a locked config accepts `--config.section.field=value` overrides
for all of them and rejects misspelt ones. See `core/training` for what each field does.
"""
import ml_collections


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "masked-lm"                 # masked-lm | causal-lm | sequence-classification
    c.seed = 0
    c.precision = ""                     # jax_default_matmul_precision ("" leaves it alone)
    c.nan_policy = "stop"                # stop: raise naming the step | skip: drop the update, go on
    c.export = "final"                   # HF folder under <workdir>/hf: "final", "best" or "" (none)
    c.tokenizer = ""                     # a tokenizer folder; "" = the model.init_from folder
    c.export_check = True                # load the exported folder in the PyTorch port and transformers
                                         # and report their max |diff| from JAX on an eval batch

    c.model = ml_collections.ConfigDict()
    c.model.family = "bert"              # model_type for a fresh model (registry.FAMILIES)
    c.model.init_from = ""               # HF folder to start from ("minilm" = the bundled checkpoint)
    c.model.dtype = "float32"            # compute dtype; params (master copy) stay float32
    c.model.remat = False
    c.model.hf = ml_collections.ConfigDict()   # Hugging Face config fields (hidden_size, ...)

    c.data = ml_collections.ConfigDict()
    c.data.train = "experiments/data/corpus.txt"   # .txt (blank-line separated docs), .jsonl, or a dir
    c.data.eval = ""                     # separate eval file; "" = hold out every k-th train document
    c.data.eval_fraction = 0.1
    c.data.text_field = "text"
    c.data.text_pair_field = ""
    c.data.label_field = "label"
    c.data.labels = ""                   # comma list fixing the label order; "" = sorted unique labels
    c.data.seq_len = 64
    c.data.mlm_probability = 0.15
    c.data.shuffle = True

    c.train = ml_collections.ConfigDict()
    c.train.steps = 300
    c.train.batch_size = 16              # global batch (all hosts and devices), in rows
    c.train.grad_accum = 1               # micro-batches per step (the batch is split k ways)
    c.train.eval_batch_size = 16
    c.train.log_every = 10
    c.train.eval_every = 100
    c.train.eval_at_start = True
    c.train.dropout_rng = "per_example"  # per_example: masks independent of devices/accumulation; per_batch: faster

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = "adamw"
    c.optimizer.lr = 1e-3
    c.optimizer.b1 = 0.9
    c.optimizer.b2 = 0.999
    c.optimizer.eps = 1e-8
    c.optimizer.weight_decay = 0.01
    c.optimizer.no_decay = "bias,norm"   # categories without weight decay: bias, norm, embedding
    c.optimizer.schedule = "cosine"      # cosine | linear | constant, after linear warmup
    c.optimizer.warmup_steps = 30
    c.optimizer.decay_steps = 0          # 0 = train.steps
    c.optimizer.end_lr_ratio = 0.0
    c.optimizer.clip_norm = 1.0          # global-norm clipping; 0 = off

    c.parallel = ml_collections.ConfigDict()
    c.parallel.mode = "single"           # single | pmap | sharded
    c.parallel.mesh_data = -1            # sharded: ("data", "fsdp") mesh; -1 = the rest of the devices
    c.parallel.mesh_fsdp = 1             # params/optimizer state sharded over this many devices
    c.parallel.fsdp_min_size = 0         # leaves with fewer elements stay replicated

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.every = 100
    c.checkpoint.keep = 3
    c.checkpoint.async_save = True
    c.checkpoint.best_metric = "loss"    # eval metric for best/; "" = no best checkpoints
    c.checkpoint.best_mode = "min"
    c.checkpoint.keep_best = 1

    c.sample = ml_collections.ConfigDict()   # causal-lm: text generated at each eval and at the end
    c.sample.prompts = ""                # prompts separated by "|"; "" = no samples
    c.sample.max_new_tokens = 32
    c.sample.temperature = 0.8           # 0 = greedy
    c.sample.top_k = 40

    c.log = ml_collections.ConfigDict()
    c.log.progress = True                # tqdm bar (loss, tokens/s, ETA)
    c.log.tensorboard = False            # event files under <workdir>/tb (imports TensorFlow)

    c.debug = ml_collections.ConfigDict()
    c.debug.inject_nan_at_step = 0       # >0: make that step's loss NaN (tests the nan_policy)
    c.debug.sleep_per_step = 0.0         # seconds; slows a run down (tests kill it mid-training)
    return c


def bert_hf(hidden: int, layers: int, heads: int, intermediate: int, max_positions: int,
            dropout: float = 0.1) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=intermediate, max_position_embeddings=max_positions,
        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout))
