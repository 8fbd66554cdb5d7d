"""Training: non-canonical JAX code (not transpiled) that trains Rosetta models.

    from core.training import trainer
    summary = trainer.train(config, workdir)     # config: see configs/base.py

Modules: `data` (corpora → packed, seeded, per-host batches), `optim` (AdamW, decay mask,
schedules), `steps` (train/eval steps for every task), `parallel` (single / pmap / sharded
placement, multi-host start), `checkpoint` (orbax: resume, best, corruption fallback),
`metrics` (JSONL, TensorBoard, progress), `trainer` (the loop), `testing` (subprocess helpers).
"""
