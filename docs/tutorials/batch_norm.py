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
# # Batch normalisation
#
# Deep networks train slowly partly because every layer's input distribution keeps moving while the layers below
# learn. **Batch normalisation** (Ioffe and Szegedy, 2015) standardises each channel over the minibatch, then
# rescales it with a learned scale and shift; at test time it uses running averages instead of the batch. In
# practice it allows much larger learning rates and makes deep networks train reliably.
#
# The textbook shows it on LeNet: `lenet_bn` is LeNet-5 with a BatchNorm layer after every convolution and dense
# layer, before the sigmoid. It trains at a learning rate of 1.0, which plain LeNet does not survive.

# %%
import _tutorial as page

import moderncnn as mc
from moderncnn.inspect import explain_images, plot_run_filters

MODEL, RECIPE = "lenet_bn", "d2l-ch7"

# %% [markdown]
# ## The network, layer by layer
#
# LeNet with BatchNorm after each learned layer; the shapes are the book's for one 28-pixel image.

# %%
net = mc.create_model(MODEL, num_classes=10, in_channels=1)
print(mc.summary(net, (1, 1, 28, 28)))

# %% [markdown]
# ## Training on a laptop: the `fast` budget
#
# The book trains for 10 epochs with a learning rate of 1.0. The `fast` budget trains for 4 epochs with a modern
# recipe.
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
# The 6 filters of the first 5x5 convolution.

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
