"""How each model is trained: one loop, and a recipe per model that hands it a batch, a loss and an evaluation.

    loop.py        fit(): Accelerate, AdamW, warm-up and cosine, EMA, tqdm, time budgets; the config checks; the
                   run record (metrics, history, config) written atomically
    checkpoint.py  training state as safetensors in step-numbered folders, so a kill at any instant can resume
    background.py  a training run in a subprocess beside a lab, read as its checkpoints arrive
    clip.py, prior.py, t2i.py, judge.py    the recipes behind `mmdiff-lab train clip|prior|t2i|judge`
"""
