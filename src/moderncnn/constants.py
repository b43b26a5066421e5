"""Facts shared across layers, kept in one place (a leaf module: it imports nothing)."""

# Per-channel mean and std of ImageNet's training images on [0, 1]: what torchvision's pretrained weights expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Augmentation presets (defined in ``moderncnn.data.augment``); named here so settings and the CLI can list them
# without loading torch.
AUGMENT_PRESETS = ("none", "d2l", "cifar", "uva", "airbench")

# How the presets that mirror images choose which: a coin per image and batch, or airbench's alternating flip.
FLIP_MODES = ("random", "alternate")

# Test-time augmentation views: none, each image and its mirror, or those two at three 1-pixel shifts (airbench).
TTA_VIEWS = ("none", "flip", "flip-shift")

# The choice lists of the settings, named here so that the settings, the command line and the code that acts on
# them list the same ones without loading torch.
OPTIMIZERS = ("sgd", "adam", "adamw", "muon")
SCHEDULES = ("none", "multistep", "cosine", "onecycle", "linear")
INITS = ("default", "xavier", "kaiming")
# Numeric precision: auto (chosen for the hardware, ``run.speed``) or one of Lightning's.
PRECISIONS = ("auto", "32", "bf16-mixed", "16-mixed")
# Speed switches (channels_last, compile): auto, or forced on or off.
SWITCHES = ("auto", "true", "false")
# A run's checkpoints (``checkpoints/<name>.ckpt``); the one tested at the end lists the default first.
CHECKPOINTS = ("best", "last")
TEST_CHECKPOINTS = ("last", "best")
# A recipe's budgets: the published settings, fewer epochs, a modern recipe at native resolution, a smoke test.
BUDGETS = ("full", "quick", "fast", "smoke")

# What `moderncnn serve` answers with: a run in PyTorch, or an ONNX export in onnxruntime.
SERVE_BACKENDS = ("torch", "onnxruntime")

# torchvision's image file extensions (``torchvision.datasets.folder.IMG_EXTENSIONS``), repeated so that predicting
# does not import torchvision (a test keeps the two equal).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
