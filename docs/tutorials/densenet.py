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
# # DenseNet
#
# ResNet adds a block's input to its output. DenseNet (Huang et al., 2017) **concatenates** them instead: inside a
# dense block, each layer receives the feature maps of all the layers before it and adds a few channels of its own
# (the growth rate). Features are reused rather than relearned, so the layers can be narrow. Between dense blocks a
# **transition layer** (a 1x1 convolution and average pooling) halves the channels and the resolution.
#
# The textbook's DenseNet (`densenet_d2l`) has four dense blocks of four layers with growth rate 32, and about
# 0.76 million parameters, for 96-pixel grey images.

# %%
import _tutorial as page

import moderncnn as mc
from moderncnn.inspect import explain_images, plot_run_filters

MODEL, RECIPE = "densenet_d2l", "d2l-ch7"

# %% [markdown]
# ## The network, layer by layer
#
# Each stage's output shape for one 96-pixel image: watch the channels grow inside each dense block.

# %%
net = mc.create_model(MODEL, num_classes=10, in_channels=1)
print(mc.summary(net, (1, 1, 96, 96)))

# %% [markdown]
# ## Training on a laptop: the `fast` budget
#
# The book trains for 10 epochs at 96 pixels. The `fast` budget trains at 29 pixels (the smallest size at least
# 28 that it accepts) with a modern recipe.
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
