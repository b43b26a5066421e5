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
# # GoogLeNet
#
# Which window size is best, 1x1, 3x3 or 5x5? Szegedy et al. (2015) use all of them. An **Inception block** runs four
# branches side by side (a 1x1 convolution; 1x1 then 3x3; 1x1 then 5x5; 3x3 max pooling then 1x1) and concatenates
# their channels. The 1x1 convolutions in front reduce the channels first, which keeps the cost down.
#
# GoogLeNet stacks nine Inception blocks in five stages and ends in global average pooling. The textbook's version
# (`googlenet_d2l`) takes 96-pixel grey images and drops the paper's auxiliary classifiers.

# %%
import _tutorial as page

import moderncnn as mc
from moderncnn.inspect import explain_images, plot_run_filters

MODEL, RECIPE = "googlenet_d2l", "d2l-ch7"

# %% [markdown]
# ## The network, layer by layer
#
# Each stage's output shape for one 96-pixel image.

# %%
net = mc.create_model(MODEL, num_classes=10, in_channels=1)
print(mc.summary(net, (1, 1, 96, 96)))

# %% [markdown]
# ## Training on a laptop: the `fast` budget
#
# The book trains for 10 epochs at 96 pixels. The `fast` budget trains at Fashion-MNIST's own 28 pixels with a
# modern recipe.
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
# The 64 filters of the 7x7 stem.

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
