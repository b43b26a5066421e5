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
# # VGG
#
# VGG (Simonyan and Zisserman, 2015) replaced AlexNet's hand-sized layers with one repeated pattern: a **block** of
# 3x3 convolutions with ReLU, then a 2x2 max pooling that halves the resolution. Two stacked 3x3 convolutions see a
# 5x5 window with fewer parameters than one 5x5; the network is just a list of blocks, `conv_arch`, each a number
# of convolutions and a width.
#
# The textbook builds VGG-11, `((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))`, and trains a version with every
# width divided by 4 (`width_ratio=4`) because the full one is slow. The printout below is the full network, as in
# the book; the run trains the small one.

# %%
import _tutorial as page

import moderncnn as mc
from moderncnn.inspect import explain_images, plot_run_filters

MODEL, RECIPE = "vgg_d2l", "d2l-ch7"

# %% [markdown]
# ## The network, layer by layer
#
# Each block's output shape for one 224-pixel image: the resolution halves five times, 224 to 7.

# %%
net = mc.create_model(MODEL, num_classes=10, in_channels=1)
print(mc.summary(net, (1, 1, 224, 224)))

# %% [markdown]
# ## Training on a laptop: the `fast` budget
#
# The book trains the small VGG for 10 epochs at 224 pixels. The `fast` budget keeps the small VGG (the recipe's
# `model_kwargs`) and trains it at 32 pixels, the smallest size its five poolings allow, with a modern recipe.
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
# The 16 filters of the small VGG's first 3x3 convolution.

# %%
page.show(plot_run_filters(run, run / "filters.png").path, width=520)

# %% [markdown]
# ## Where it looks: Grad-CAM
#
# Grad-CAM weighs the last convolutional stage's feature maps by the gradient of the predicted class: the bright
# parts are what speaks for the prediction. The title gives the prediction; red means it is wrong.
# At the `fast` budget's small inputs the last stage's maps can be 1x1, which would give a uniform map; the page
# then looks at the deepest layer whose maps are larger, and says which.

# %%
images = page.test_images(run, run / "test-images", count=2)
layer = page.gradcam_layer(run)  # None: the network's own feature layer
print(f"Grad-CAM at layer {layer}" if layer else "Grad-CAM at the network's feature layer")
explanations, failures = explain_images(run, images, run / "gradcam", method="gradcam", layer=layer)
for explanation in explanations:
    page.show(explanation.overlay, width=360)
