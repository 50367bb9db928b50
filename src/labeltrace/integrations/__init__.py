"""Thin adapters around :class:`~labeltrace.record.Recorder` for other training code.

* :mod:`labeltrace.integrations.ddp` — :class:`DistributedRecorder` for ``torch.distributed``
  (DDP, ``torchrun``);
* :mod:`labeltrace.integrations.lightning` — a PyTorch Lightning callback (extra ``lightning``);
* :mod:`labeltrace.integrations.hf` — a Hugging Face ``Trainer`` that records (extra ``hf-trainer``).

Each module imports only its framework and the recorder; import the one you use.
"""
