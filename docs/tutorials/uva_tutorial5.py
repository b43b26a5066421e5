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
# # Inception, ResNet and DenseNet on CIFAR-10
#
# The University of Amsterdam's deep-learning tutorial 5 (Lippe, 2022) builds small versions of the three ideas
# for 32-pixel colour images and compares them fairly: GoogLeNet's Inception blocks, ResNet's residual blocks (in
# the original order and the pre-activation order of He et al.'s second paper) and DenseNet's dense blocks, each
# with about a quarter of a million parameters, trained on the same CIFAR-10 split. This page does the same with
# moderncnn: the data, the augmentation, the four networks, the training, the graph, the comparison table, and the
# loss landscape with and without shortcuts.

# %%
import _tutorial as page
from IPython.display import Markdown, display

import moderncnn as mc
from moderncnn.data import load_dataset
from moderncnn.data.preview import preview_grid
from moderncnn.data.stats import describe
from moderncnn.inspect import explain_images, plot_run_filters, plot_run_landscape
from moderncnn.reports.compare import compare
from moderncnn.reproduce import load_recipe

RECIPE = "uva-tutorial5"
recipe = load_recipe(RECIPE)
NETWORKS = [network.model for network in recipe.networks]
print(NETWORKS)

# %% [markdown]
# ## The data
#
# 45,000 training images, 5,000 for validation and 10,000 for testing. The tutorial normalises with the training
# images' per-channel mean and standard deviation; moderncnn computes them from the data and caches them.

# %%
settings = page.settings(RECIPE, "resnet_uva")
data = load_dataset(settings["dataset"], val_size=settings["val_size"])
facts = describe(data)
print({name: split["size"] for name, split in facts["splits"].items()})
print("mean", [round(m, 4) for m in facts["mean"]], " the tutorial's", settings["mean"])
print("std ", [round(s, 4) for s in facts["std"]], " the tutorial's", settings["std"])

# %% [markdown]
# ## Augmentation
#
# The tutorial's preset (`uva`): a random resized crop (80-100% of the image, aspect 0.9-1.1) and a horizontal
# flip. Each row is one training image, then five augmented versions of it. The `fast` budget below uses random
# 4-pixel shifts and flips instead (`cifar`).

# %%
page.show(preview_grid(data, page.RUN_ROOT / "augment.png", count=4, augment="uva", versions=5), width=520)

# %% [markdown]
# ## The four networks
#
# The tutorial publishes each network's parameter count; ours are the same, to the parameter.

# %%
rows = ["| network | parameters | the tutorial's |", "|---|--:|--:|"]
for network in recipe.networks:
    ours = mc.summary(mc.create_model(network.model), (1, 3, 32, 32)).total_params
    rows.append(f"| `{network.model}` | {ours:,} | {network.published['uva_params']:,} |")
display(Markdown("\n".join(rows)))
print(mc.summary(mc.create_model("resnet_uva"), (1, 3, 32, 32)))

# %% [markdown]
# ## Training
#
# The tutorial trains each network for 180 epochs. The recipe's `fast` budget trains them for 20-30 epochs with a
# one-cycle schedule, Nesterov momentum, label smoothing and six-view test-time augmentation (the image and its
# mirror, each also shifted by one pixel), which on a laptop CPU takes 15-65 minutes per network instead of hours.
# With `MODERNCNN_DOCS_RUNS` pointing at a finished `moderncnn reproduce uva-tutorial5 --budget fast`, the page
# loads those runs instead of training again (the executed page in the docs does, and says so below).

# %%
runs = {model: page.train_or_load(model, RECIPE, page.settings(RECIPE, model)) for model in NETWORKS}

# %% [markdown]
# ## The graph in TensorBoard
#
# Every run logs its network's graph, as the tutorial does; `tensorboard --logdir RUN/tensorboard` shows it in the
# Graphs tab. Here is what the event file holds for ResNet:

# %%
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

events = EventAccumulator(str(runs["resnet_uva"] / "tensorboard"))
events.Reload()
graph = events.Graph()
print(f"{len(graph.node)} nodes in the traced graph, for example:")
print("\n".join(node.name for node in graph.node[:: max(1, len(graph.node) // 12)][:12]))

# %% [markdown]
# ## The comparison
#
# `compare` (what `moderncnn compare` and `moderncnn reproduce` call) puts the runs side by side with the tutorial's
# figures: validation and test accuracy, parameters, and time.

# %%
report = page.RUN_ROOT / "uva-comparison"
compare(list(runs.values()), report, recipe=recipe.heading(), budget=page.BUDGET)
display(Markdown((report / "comparison.md").read_text()))

# %%
page.show(report / "comparison.png", width=700)
page.show(report / "val_curves.png", width=480)

# %% [markdown]
# ## Inside ResNet: filters and Grad-CAM

# %%
page.show(plot_run_filters(runs["resnet_uva"], report / "filters.png").path, width=420)
images = page.test_images(runs["resnet_uva"], report / "test-images", count=2)
for explanation in explain_images(runs["resnet_uva"], images, report / "gradcam").explanations:
    page.show(explanation.overlay, width=360)

# %% [markdown]
# ## Why shortcuts help: the loss landscape
#
# The tutorial ends with Li et al.'s (2018) pictures of the loss around the trained weights. `resnet20` with
# `shortcut="none"` is the same network without its shortcuts (He et al.'s plain-20). Both train for 3 epochs;
# the loss is then evaluated on a grid along two random directions, normalised filter by filter, on the same 256
# training images. With shortcuts the surface is smooth and bowl-like; without them it is steeper and rougher.

# %%
points, subset = (3, 16) if page.SMOKE else (13, 256)
for name, shortcut in (("resnet20", "zeropad"), ("plain20", "none")):
    values = page.settings(RECIPE, "resnet20", epochs=3, model_kwargs={"shortcut": shortcut})
    run = page.train_or_load("resnet20", RECIPE, values, name=name)
    landscape = plot_run_landscape(run, report / f"landscape-{name}.png", dim=2, points=points, subset=subset)
    print(f"{name}: loss {landscape.centre:.3f} at the trained weights, highest on the grid {landscape.loss.max():.1f}")
    page.show(report / f"landscape-{name}.png", width=420)
