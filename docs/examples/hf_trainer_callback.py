"""Meter a Hugging Face ``Trainer``: one window per optimizer step, a job run file at the end.

    from hf_trainer_callback import MeterCallback
    trainer = Trainer(model=model, args=args, train_dataset=ds,
                      callbacks=[MeterCallback(tokens_per_step=args.per_device_train_batch_size * 2048,
                                               price_usd_per_gpu_hour=2.0)])

``tokens_per_step``: the tokens this process trains on per optimizer step (its GPUs are the ones
metered). ``transformers`` is not a dependency of gpu-cost-meter; this file needs it only when used.
"""

from transformers import TrainerCallback

import meter


class MeterCallback(TrainerCallback):
    def __init__(self, tokens_per_step, path="runs/hf-trainer.json", **meter_options):
        self.meter, self.tokens, self.path = meter.Meter(**meter_options), tokens_per_step, path

    def on_step_begin(self, args, state, control, **kwargs):
        self.meter.begin_window("step")

    def on_step_end(self, args, state, control, **kwargs):
        self.meter.end_window("step", tokens=self.tokens)

    def on_train_end(self, args, state, control, **kwargs):
        self.meter.close()
        self.meter.save(self.path)
