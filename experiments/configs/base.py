"""Base configuration shared by every model; `lm.py`, `vae.py` and `vrash.py` override it."""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.model = 'vrash'  # 'lm' (paper Fig. 2), 'vae' (Fig. 3), 'vrash' (Fig. 4), 'tlm' or 'tvrash' (models.py)
  c.seed = 0  # the one seed: data order, initialization, dropout and latent noise
  # Data.
  c.max_len = 64  # notes per example: longer examples are cut, shorter ones padded
  c.batch_size = 64  # global batch, split evenly over every device of every host
  c.eval_batch_size = 256  # global batch for evaluation
  # Length bucketing: a batch of similar-length melodies is padded only to its longest one,
  # rounded up to a multiple of 1/8 of the next power of two and of this step (input_pipeline.
  # padded_widths: 4 compiled widths per doubling of length); 0 pads to max_len.
  c.bucket_step = 8
  # Note representation (paper Sec. 2 end): concatenated embeddings.
  c.pitch_embed = 24  # pitch-class embedding size
  c.octave_embed = 8  # octave embedding size
  c.delay_embed = 16  # delay embedding size
  c.meta_embed = 8  # size of each meta-information embedding (program family, tempo)
  # Recurrent Highway Network (Zilly et al. 2016), encoder and decoder alike.
  c.hidden = 256  # state size
  c.depth = 3  # recurrence depth L (micro-layers per time step)
  c.transform_bias = -2.0  # initial transform-gate bias: negative = carry the state at first
  c.input_dropout = 0.1  # variational (per-sequence) dropout on RHN inputs
  c.state_dropout = 0.1  # variational dropout on the recurrent state
  c.output_dropout = 0.1  # variational dropout on RHN outputs
  c.custom_backward = True  # RHN gradients by rhn_scan's hand-written VJP (False: scan autodiff)
  # Time steps per iteration of the RHN's forward and backward scans (the same figures, fewer loop
  # trips); 0: by platform (rhn.scan_unroll: 8 on GPUs, 1.54x faster on an H200; 1 elsewhere).
  c.scan_unroll = 0
  # How the RHN's scans run: 'xla' (XLA's loops); 'pallas' (kernels/rhn_pallas.py: one fused
  # kernel a scan) or 'pallas_layer' (kernels/rhn_layer_pallas.py: one kernel a micro-layer in
  # XLA's loops), for GPUs; elsewhere interpreted, for tests. Both need custom_backward. On one
  # H200 both lost to XLA's loops (5.4x and 2.9x slower steps, BENCHMARKS.md).
  c.rhn_kernel = 'xla'
  # Transformer decoder ('tlm', 'tvrash'; transformer.py): pre-LayerNorm blocks, rotary
  # positions, sized near the RHN decoder's parameter count (README: the comparison's budget).
  c.attention_layers = 2  # blocks (self-attention, then a 4x GELU MLP)
  c.attention_width = 128  # residual stream width (hidden 256 depth 3 RHN: 428k decoder params; this: 405k)
  c.attention_heads = 4  # heads; width / heads must be even (rotary pairs)
  c.attention_dropout = 0.1  # dropout on the decoder's inputs and every residual branch
  # Compute dtype of embeddings, RHN matmuls and heads: 'float32' or 'bfloat16' (GPU/TPU).
  # Parameters, optimizer state, the RHN state across time, softmax, KL and figures stay float32.
  c.dtype = 'float32'
  # Latent code (VAE, VRASH).
  c.latent_dim = 16  # size of z (the paper's Fig. 6 shows 16-d latents)
  # The rate: on whole melodies of the six-collection corpus (valid split) VRASH with note
  # dropout 0 and free bits 0.5 was the frontier point whose IW bound beat the LM's NLL with
  # KL >= 5 nats per melody; note dropout 0.5 or free bits 1 cost 1-7% in the bound (README).
  c.note_dropout = 0.0  # share of history inputs the decoder cannot see (Bowman et al. 2015)
  c.kl_anneal_steps = 2000  # KL weight rises linearly from 0 to 1 over these steps
  c.free_bits = 0.5  # nats per latent dimension below which KL is not penalized
  # Cyclical annealing (Fu et al. 2019): the steps after pretraining form this many cycles, the
  # KL weight rising from 0 to 1 over the first half of each; 0: one rise over kl_anneal_steps.
  c.kl_cycles = 0
  # Encoder pretraining (Li et al. 2019): this many steps as a plain autoencoder (KL weight 0),
  # then the decoder is re-initialized and the VAE trained as usual; 0: no pretraining.
  c.pretrain_steps = 0
  # Optimization (optax Adam).
  c.learning_rate = 2e-3  # peak learning rate
  c.warmup_steps = 200  # linear warm-up, then cosine decay to 10% of the peak
  c.train_steps = 20000  # total optimizer steps
  c.grad_clip = 1.0  # global-norm gradient clipping
  # Loop.
  c.log_every = 100  # steps between train metric lines (metrics leave the device only then)
  c.eval_every = 2000  # steps between evaluations on the valid split (0 = only at the end)
  # Saturation: every evaluation's valid NLL bound (importance-weighted with this many posterior
  # samples; 0: the ELBO) picks the best checkpoint, kept in WORKDIR/best/ for test figures.
  c.valid_iw_samples = 8
  c.patience = 0  # evaluations without a better valid bound before training stops (0: never)
  c.checkpoint_every = 1000  # steps between checkpoints (and one at the end)
  c.max_to_keep = 3  # checkpoints kept in the workdir
  return c
