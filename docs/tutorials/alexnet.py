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
# # AlexNet
#
# In 2012 AlexNet won ImageNet by a wide margin and ended the era of hand-made features. Its ingredients were not
# new one by one; together, and on two GPUs, they were: eight learned layers (five convolutions, three dense
# layers), ReLU instead of the sigmoid so deep gradients do not vanish, dropout in the dense layers, and heavy data
# augmentation.
#
# The textbook's version (`alexnet_d2l`) is AlexNet for 1-channel Fashion-MNIST images upsampled to 224 pixels: an
# 11x11 convolution with stride 4, then 5x5 and three 3x3 convolutions with max pooling between, and two dense
# layers of 4096 units with dropout. Almost all of its 47 million parameters sit in those dense layers.

# %%
import _tutorial as page

import moderncnn as mc
from moderncnn.inspect import explain_images, plot_run_filters

MODEL, RECIPE = "alexnet_d2l", "d2l-ch7"

# %% [markdown]
# ## The network, layer by layer
#
# The book's 21 rows: each layer's output shape for one 224-pixel image, then parameters and FLOPs.

# %%
net = mc.create_model(MODEL, num_classes=10, in_channels=1)
print(mc.summary(net, (1, 1, 224, 224)))

# %% [markdown]
# ## Training on a laptop: the `fast` budget
#
# The book trains for 10 epochs at 224 pixels. The `fast` budget trains the same network at the smallest size it
# accepts (65 pixels: the stride-4 stem and three poolings need that much), with a modern recipe.
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
# The 96 filters of the 11x11 stem, one tile each, each scaled on its own.

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
