"""Embedded default: pQRNN-MAtt on the synthetic TOP-style dataset.

  python train.py --workdir /tmp/pqrnn_default

Trains the default-size model (about 2.8 M parameters) on generated data;
expected on 2 CPU cores: a few minutes, eval exact match above 0.9 (see
docs/RESULTS.md for the measured number). Every key of every config is
declared here with a one-line comment; variants override values only
(the LSTM baseline, configs/lstm_mtop.py, declares its own model keys).
"""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.seed = 0  # Parameters, data order and dropout all derive from it.
  c.distributed = False  # Multi-host: jax.distributed.initialize() first.
  c.coordinator_address = ""  # host:port of process 0; "" = detected (TPU
  # pods, SLURM, Open MPI) or $JAX_COORDINATOR_ADDRESS.
  c.num_processes = 0  # With coordinator_address: how many processes.
  c.process_id = -1  # With coordinator_address: this process, 0-based.

  c.data = d = ml_collections.ConfigDict()
  d.source = "synthetic"  # "synthetic", "files" or "tfds" (MTOP builder).
  d.synthetic_sizes = (6000, 500, 500)  # train, eval, test examples.
  d.synthetic_seed = 0  # Seed of the generated dataset.
  d.data_dir = ""  # Base of relative file paths; "" = $MTOP_DIR or shared.
  d.train_file = ""  # Any format readers.read_examples accepts, as a spec
  # [LOCALE=]PATH[[A%:B%]] (a slice by ID hash; pqrnn_jax/data/mixture.py).
  d.eval_file = ""
  d.test_file = ""
  d.train_files = ()  # Several specs (then *_file is unused); metrics are
  d.eval_files = ()  # reported per locale and as their unweighted average.
  d.test_files = ()
  d.train_weights = ()  # Sampling weight per train file; () = by size:
  d.mixture_temperature = 1.0  # p ~ rows ** (1 / T); 1 = as they are.
  d.tfds_language = "en"  # tfds: the MTOP builder config (language).
  d.tfds_dir = ""  # tfds: where prepared data goes; "" = TFDS default.
  d.skip_bad_rows = False  # Skip (and count) malformed rows, else raise.
  d.skip_unusable = False  # Train on the rest when > 1% of the train rows
  # cannot be encoded (too long, unalignable); else that is an error.
  d.augment_ratio = 0.0  # Slot-value substituted copies per train example
  # (pqrnn_jax/augment.py); 0 = off.
  d.form = "decoupled"  # "decoupled" (MTOP) or "full" (TOP): decoding rules.

  c.model = m = ml_collections.ConfigDict()
  m.projection_size = 512  # F: ternary hash features per token.
  m.token_features = ()  # Sub-word hashes beside the word: "shape",
  # "prefix2".."prefix4", "suffix2".."suffix4" (projection.TOKEN_FEATURES).
  m.word_dropout = 0.0  # Training: drop a token's whole-word hash (keeps
  # its sub-word hashes); only with token_features.
  m.bottleneck = 256  # D: bottleneck and decoder width.
  m.qrnn_hidden = 128  # H per direction.
  m.qrnn_layers = 2
  m.qrnn_kernel = 3
  m.zoneout = 0.25  # Layer l: zoneout ** (l + 1), training only.
  m.pooling = "scan"  # "scan", "associative", "unrolled" or "doubling".
  m.decoder_layers = 2
  m.heads = 4
  m.ffn = 512
  m.dropout = 0.1
  m.max_source_len = 48  # T_max tokens.
  m.max_target_len = 64  # U_max actions, EOS included.
  m.dtype = "auto"  # Compute: "auto" = bfloat16 on GPU/TPU, float32 on
  # CPU; or "float32" / "bfloat16". Params, optimizer and loss stay f32.
  m.matmul = "auto"  # Dense matmul operands: "auto" = bfloat16 on CPUs with
  # bfloat16 dots (AVX512-BF16: 1.8x a step), else as dtype; f32 sums.
  m.quant = "none"  # "none" or "int8" (AQT quantization-aware training).
  m.arch = "pqrnn"  # models.REGISTRY key; "lstm": configs/lstm_mtop.py.
  m.pretrained = ""  # "use-m3": add USE multilingual v3's word vectors
  # (extra `pretrained`, pqrnn_jax/pretrained.py) to the bottleneck input.
  m.freeze_embeddings = True  # With `pretrained`: the table gets no update.
  m.word_vocab_size = 60000  # With `pretrained`: words kept in the table.

  c.train = t = ml_collections.ConfigDict()
  t.batch_size = 64  # Global batch, divisible by the device count.
  t.num_steps = 1000
  t.learning_rate = 2e-3
  t.warmup_steps = 100
  t.end_lr_fraction = 0.01  # The cosine decay ends at this * learning_rate.
  t.schedule_steps = 0  # The decay's length; 0 = num_steps. Longer: training
  # stops partway down the cosine (the longer run's first num_steps steps).
  t.weight_decay = 0.01
  t.grad_clip = 1.0
  t.label_smoothing = 0.1
  t.rdrop = 0.0  # > 0: R-Drop, two dropout passes per batch and this
  # weight on their symmetric KL (pqrnn_jax/consistency.py); 0 = off.
  t.loss_norm = "batch"  # Token-summed loss over: "data" = the data's mean
  # tokens per batch (every token weighs alike), "batch" = this batch's.
  t.ema_decay = 0.0  # > 0: also keep an average of the parameters, which is
  # then what is evaluated and saved to best/ (e.g. 0.999); 0 = off.
  t.buckets = 3  # Length buckets, shapes chosen from the data to cut
  # padding (input_pipeline.bucket_shapes): one compiled step each. More
  # buckets run faster per step but learn less per step (docs/RESULTS.md).
  t.packing = False  # Random batches packed several examples per row
  # (pqrnn_jax/packing.py): few pads, and `buckets` is not used.
  t.devices = 0  # Local devices to train on; 0 = all.
  t.branch_from = ""  # "WORKDIR[:STEP]": a fresh run starts from that
  # checkpoint (step, optimizer, average), e.g. soup members (soup.py).
  t.stop_after = 0  # Stop (with a checkpoint) after this many steps of this
  # run, for time-boxed jobs; 0 = run to num_steps. Rerun to resume.

  c.distill = k = ml_collections.ConfigDict()  # See pqrnn_jax/distill.py.
  k.teacher_workdir = ""  # A trained workdir: KD teacher and/or labeller;
  # "a,b,c": their ensemble (pqrnn_jax/ensemble.py; labels need beam 1).
  k.alpha = 0.0  # Weight of the token-level KD term; 0 = off.
  k.temperature = 2.0  # KD softmax temperature T (loss scaled by T^2).
  k.sequence_from_teacher = False  # Add teacher beam parses of train data.
  k.sequence_file = ""  # Or a user file of teacher parses (any format).
  k.unlabelled_file = ""  # More utterances for the teacher to label.
  k.sequence_ratio = 1.0  # Teacher examples per gold example.
  k.teacher_beam = 4  # Beam size when the teacher labels utterances.

  c.log_every = 50  # Steps between train metric lines.
  c.eval_every = 500  # Steps between evaluations on the eval split.
  c.checkpoint_every = 500  # Steps between checkpoints.
  c.keep_checkpoints = 2  # Latest checkpoints kept (best/ kept apart).
  c.eval_batch_size = 128
  c.max_eval_examples = 0  # 0: the whole eval split.
  return c
