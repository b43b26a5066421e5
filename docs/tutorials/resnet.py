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
# # ResNet
#
# Stacking more layers should never make a network worse: the extra layers could learn to pass their input through
# unchanged. In practice plain deep networks do get worse, because the identity is hard to learn with a stack of
# convolutions. He et al. (2016) make it the easy default: a **residual block** computes `x + g(x)`, so its layers
# only have to learn the correction `g`, and the gradient reaches early layers through the shortcut untouched.
#
# The textbook's ResNet-18 (`resnet18_d2l`) is four stages of two residual blocks each, after a 7x7 stem, for
# 1-channel 96-pixel Fashion-MNIST images. The first block of stages 2-4 halves the resolution and doubles the
# channels; its shortcut is a 1x1 convolution so the two branches can be added.

# %%
import _tutorial as page

import moderncnn as mc
from moderncnn.inspect import explain_images, plot_run_filters

MODEL, RECIPE = "resnet18_d2l", "d2l-ch7"

# %% [markdown]
# ## The network, layer by layer
#
# The same printout as the book: each top-level block's output shape for one 96-pixel image, then the parameters
# and FLOPs.

# %%
net = mc.create_model(MODEL, num_classes=10, in_channels=1)
print(mc.summary(net, (1, 1, 96, 96)))

# %% [markdown]
# ## Training on a laptop: the `fast` budget
#
# The book trains for 10 epochs at 96 pixels with plain SGD. The recipe's `fast` budget keeps the network and
# trains it at Fashion-MNIST's own 28 pixels with a modern recipe (one-cycle schedule, Nesterov momentum, label
# smoothing, random shifts and flips, flip test-time augmentation). These are its settings:

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
# training step on a V100; ours time whole epochs, data included, on this machine.

# %%
page.beside_published(run, RECIPE)

# %% [markdown]
# ## What the first layer learned
#
# The 64 filters of the 7x7 stem, one tile each, each scaled on its own.

# %%
page.show(plot_run_filters(run, run / "filters.png").path, width=520)

# %% [markdown]
# ## Where it looks: Grad-CAM
#
# Grad-CAM weighs the last stage's feature maps by the gradient of the predicted class and keeps what speaks for
# it. The title gives the prediction; red means wrong.
# At the `fast` budget's small inputs the last stage's maps can be 1x1, which would give a uniform map; the page
# then looks at the deepest layer whose maps are larger, and says which.

# %%
images = page.test_images(run, run / "test-images", count=2)
layer = page.gradcam_layer(run)  # None: the network's own feature layer
print(f"Grad-CAM at layer {layer}" if layer else "Grad-CAM at the network's feature layer")
explanations, failures = explain_images(run, images, run / "gradcam", method="gradcam", layer=layer)
for explanation in explanations:
    page.show(explanation.overlay, width=360)
