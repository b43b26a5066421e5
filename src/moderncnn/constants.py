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

# torchvision's image file extensions (``torchvision.datasets.folder.IMG_EXTENSIONS``), repeated so that predicting
# does not import torchvision (a test keeps the two equal).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
