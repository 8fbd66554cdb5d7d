"""Shared building blocks. `prims` holds the hand-written primitives (one twin per framework);
the other modules are canonical code in the portable subset and are transpiled with the models."""
