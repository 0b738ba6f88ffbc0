"""The networks, each a diffusers ``ModelMixin`` + ``ConfigMixin`` (saved and loaded as safetensors + config.json).

    blocks.py     the transformer block on diffusers' Attention, and the sinusoidal embeddings
    encoders.py   the contrastive dual encoder: image tower, text tower, one shared space (lab 02)
    prior.py      the diffusion prior: text embedding -> image embedding in that space (lab 02)
    denoiser.py   the text-to-image denoiser (a DiT with cross-attention) and the UNet anchor (lab 03)
    judge.py      the ShapesWorld faithfulness judge, the examiner of every generated image

How each is trained lives in ``mmdiff_lab.training``, how it is measured in ``mmdiff_lab.metrics``.
"""
