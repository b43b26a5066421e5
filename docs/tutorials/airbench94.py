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
# # 94% on a CPU
#
# How little compute does 94% test accuracy on CIFAR-10 need? Keller Jordan's airbench94 (2024) holds the record:
# 94.01% in 2.59 seconds on one A100 GPU, about 0.29 PFLOP of training in all. The network is small and plain (a
# fixed whitening layer computed from the data, then three groups of two 3x3 convolutions with 64, 256 and 256
# channels), and most of the gain comes from how it is trained: the Muon optimizer for the filters, a learning rate
# that decays linearly to zero, alternating flips, and test-time views. 0.29 PFLOP is about ten minutes for a
# 2-core CPU that computes bf16 natively (AVX-512 BF16 or AMX), and about an hour for one that does not: the record
# is within reach of a laptop. What this page's machine took is in the table below.

# %%
# requires: model airbench94
# requires: recipe airbench
import _tutorial as page

import moderncnn as mc
from moderncnn.inspect import explain_images, plot_run_filters

MODEL, RECIPE = "airbench94", "airbench"

# %% [markdown]
# ## The network, layer by layer

# %%
net = mc.create_model(MODEL)
print(mc.summary(net, (1, 3, 32, 32)))

# %% [markdown]
# ## Training with the paper's settings
#
# The bundled recipe `airbench` holds the script's settings and the published figures; these are the ones this
# run uses:

# %%
settings = page.settings(RECIPE, MODEL)
print(settings)

# %%
run = page.train_or_load(MODEL, RECIPE, settings)

# %% [markdown]
# ## Curves

# %%
page.show(run / "curves.png", width=520)

# %% [markdown]
# ## Beside the paper
#
# The paper's time is on an A100 GPU; ours is the wall time of the whole run on the machine that ran this page.

# %%
page.beside_published(run, RECIPE)

# %% [markdown]
# ## The first layer: whitening, not learning
#
# The first convolution's 2x2 filters are not learned: they are the eigenvectors of the covariance of the training
# images' 2x2 patches (each with its negative), scaled so every direction has unit variance. The strongest
# directions are the smooth ones (brightness, then colour), the weakest are edges.

# %%
page.show(plot_run_filters(run, run / "filters.png").path, width=520)

# %% [markdown]
# ## Where it looks: Grad-CAM

# %%
images = page.test_images(run, run / "test-images", count=2)
for explanation in explain_images(run, images, run / "gradcam").explanations:
    page.show(explanation.overlay, width=360)
