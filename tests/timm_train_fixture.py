"""A minimal stand-in for timm's train.py (not shipped in timm's wheel), built only from timm's public
training pieces, for tests/test_timm_train.py to run under ``torchrun -m robench.timm_train``.

Like train.py it creates the model by name with ``timm.create_model`` (``drop_rate=--drop``, extra
``--model-kwargs``), resolves the data config from the model, reads an image folder with
``timm.data.create_dataset`` / ``create_loader`` (a DistributedSampler per rank), trains under DDP
(gloo on CPU) with ``create_optimizer_v2`` and ``create_scheduler_v2``, keeps a ``ModelEmaV3``
with ``--model-ema``, and saves ``checkpoint-N.pth.tar`` / ``model_best.pth.tar`` / ``last.pth.tar``
with ``timm.utils.CheckpointSaver`` on rank 0 (``state_dict``, ``state_dict_ema``, ``args`` an
``argparse.Namespace``), the format robench reads back with ``timm:NAME=CHECKPOINT``.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
import timm
from timm.data import create_dataset, create_loader, resolve_data_config
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import AverageMeter, CheckpointSaver, ModelEmaV3, accuracy, random_seed


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="train.py stand-in")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--num-classes", type=int, default=None)
    p.add_argument("--model-kwargs", nargs="*", default=[], help="key=int pairs, as train.py's --model-kwargs")
    p.add_argument("--drop", type=float, default=0.0)
    p.add_argument("-b", "--batch-size", type=int, default=8)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--opt", default="adamw")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--sched", default="cosine")
    p.add_argument("--model-ema", action="store_true")
    p.add_argument("--model-ema-decay", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--output", required=True)
    return p.parse_args()


def main() -> None:
    args = parse_args()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    args.distributed = world > 1
    if args.distributed:
        dist.init_process_group(backend="gloo")
    args.rank = dist.get_rank() if args.distributed else 0
    args.world_size = world
    random_seed(args.seed, args.rank)
    torch.set_num_threads(1)

    model_kwargs = {k: int(v) for k, v in (kv.split("=") for kv in args.model_kwargs)}
    model = timm.create_model(args.model, pretrained=False, num_classes=args.num_classes, drop_rate=args.drop,
                              **model_kwargs)
    data_config = resolve_data_config(vars(args), model=model)
    optimizer = create_optimizer_v2(model, opt=args.opt, lr=args.lr, weight_decay=args.weight_decay)
    model_ema = ModelEmaV3(model, decay=args.model_ema_decay) if args.model_ema else None
    if args.distributed:
        model = torch.nn.parallel.DistributedDataParallel(model)

    train_set = create_dataset("", root=args.data_dir, is_training=True)
    loader = create_loader(train_set, input_size=data_config["input_size"], batch_size=args.batch_size, is_training=True,
                           use_prefetcher=False, interpolation=data_config["interpolation"], mean=data_config["mean"],
                           std=data_config["std"], num_workers=0, distributed=args.distributed,
                           persistent_workers=False, device=torch.device("cpu"))
    eval_set = create_dataset("", root=args.data_dir, is_training=False)
    eval_loader = create_loader(eval_set, input_size=data_config["input_size"], batch_size=args.batch_size,
                                use_prefetcher=False, interpolation=data_config["interpolation"], mean=data_config["mean"],
                                std=data_config["std"], crop_pct=data_config["crop_pct"], num_workers=0,
                                distributed=args.distributed, persistent_workers=False, device=torch.device("cpu"))
    scheduler, num_epochs = create_scheduler_v2(optimizer, sched=args.sched, num_epochs=args.epochs,
                                                updates_per_epoch=len(loader))
    saver = None
    if args.rank == 0:
        os.makedirs(args.output, exist_ok=True)
        saver = CheckpointSaver(model, optimizer, args=args, model_ema=model_ema, checkpoint_dir=args.output,
                                recovery_dir=args.output, max_history=2)
    loss_fn = torch.nn.CrossEntropyLoss()
    for epoch in range(num_epochs):
        if args.distributed:
            loader.sampler.set_epoch(epoch)
        model.train()
        for step, (x, y) in enumerate(loader):
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if model_ema is not None:
                model_ema.update(model, step=epoch * len(loader) + step)
            scheduler.step_update(num_updates=epoch * len(loader) + step + 1)
        scheduler.step(epoch + 1)
        model.eval()
        top1 = AverageMeter()
        with torch.no_grad():
            for x, y in eval_loader:
                top1.update(accuracy(model(x), y, topk=(1,))[0].item(), x.size(0))
        if saver is not None:
            saver.save_checkpoint(epoch, metric=top1.avg)
        print(f"rank {args.rank} epoch {epoch} loss {loss.item():.4f} top1 {top1.avg:.1f}", flush=True)
    if args.distributed:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
