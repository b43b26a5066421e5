# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Network in Network
#
# Lin et al. (2014) asked two questions of the dense layers at the end of AlexNet and VGG: why so many parameters,
# and why only at the end? A **NiN block** follows each convolution with two 1x1 convolutions, a small dense network
# applied at every pixel. The classifier disappears: the last block has one channel per class, and global average
# pooling turns each channel into a logit.
#
# The textbook's NiN has four NiN blocks with AlexNet's window sizes and widths and about 2 million parameters,
# twenty times fewer than AlexNet.

# %%
import _tutorial as page

import moderncnn as mc
from moderncnn.inspect import explain_images, plot_run_filters

MODEL, RECIPE = "nin", "d2l-ch7"

# %% [markdown]
# ## The network, layer by layer
#
# Each block's output shape for one 224-pixel image; the last block has 10 channels, one per class.

# %%
net = mc.create_model(MODEL, num_classes=10, in_channels=1)
print(mc.summary(net, (1, 1, 224, 224)))

# %% [markdown]
# ## Training on a laptop: the `fast` budget
#
# The book trains for 10 epochs at 224 pixels. The `fast` budget trains at 67 pixels (the smallest it accepts)
# with a modern recipe. Two of its settings are for NiN alone. It keeps the book's Xavier initialisation. And its
# class block's biases start at 1 (`classifier_bias`): the block ends in a ReLU, and at 67 pixels it works on a
# single pixel, so a class pushed below zero for every image in the first steps would give a logit of 0 and no
# gradient ever after. Without it, Pullover, Dress and Shirt died that way here (test accuracy 0.67).
# These are its settings, layered from the network's defaults, the recipe and the budget:

# %%
settings = page.settings(RECIPE, MODEL)
print(settings)

# %%
run = page.train_or_load(MODEL, RECIPE, settings)

# %% [markdown]
# ## Curves
#
# Training loss, training accuracy and validation accuracy per epoch (`curves.png` in the run directory).

# %%
page.show(run / "curves.png", width=520)

# %% [markdown]
# ## Beside the book
#
# The recipe keeps the book's published figures; here they are beside this run's. The book's examples/sec time the
# training step on a V100 GPU; ours time whole epochs, data included, on the machine that ran this page.

# %%
page.beside_published(run, RECIPE)

# %% [markdown]
# ## What the first layer learned
#
# The 96 filters of the first 11x11 convolution.

# %%
page.show(plot_run_filters(run, run / "filters.png").path, width=520)

# %% [markdown]
# ## Where it looks: Grad-CAM
#
# Grad-CAM weighs a convolutional stage's feature maps by the gradient of the predicted class: the bright parts are
# what speaks for the prediction. The title gives the prediction; red means it is wrong. At 67 pixels NiN's class
# block works on a single pixel, whose map would be uniform, so this page looks at the deepest layer with larger maps.

# %%
images = page.test_images(run, run / "test-images", count=2)
layer = page.gradcam_layer(run)  # None: the network's own feature layer
print(f"Grad-CAM at layer {layer}" if layer else "Grad-CAM at the network's feature layer")
explanations, failures = explain_images(run, images, run / "gradcam", method="gradcam", layer=layer)
for explanation in explanations:
    page.show(explanation.overlay, width=360)
