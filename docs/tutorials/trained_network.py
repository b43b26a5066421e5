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
# # Use a trained network
#
# moderncnn ships networks it trained itself, each with a model card that says how. Anywhere a function or command
# takes a run directory it also takes one of these weights, spelled `weights:<network>-<dataset>`: predict,
# explain, look inside, export and serve work in the first second, with nothing to train.

# %%
# requires: api list_weights
# requires: weights resnet20-cifar10
from pathlib import Path

import _tutorial as page
from IPython.display import Markdown, display

import moderncnn as mc
from moderncnn.deploy import export
from moderncnn.inspect import explain_images, plot_run_filters

# %% [markdown]
# ## The weights on offer

# %%
weights = mc.list_weights()
for entry in weights:
    print(entry)

# %%
NAME = "weights:resnet20-cifar10"
net = mc.create_model("resnet20", pretrained="cifar10")
print(mc.summary(net, (1, 3, 32, 32)))

# %% [markdown]
# ## Predict
#
# A few CIFAR-10 test images, written as PNG files in folders named by their class, then predicted exactly as
# `moderncnn predict` does (the preprocessing travels with the weights).

# %%
folder = page.RUN_ROOT / "trained-network"
images = page.dataset_images("cifar10", folder / "images", count=6)
predictions, failures = mc.predict(NAME, images)
rows = ["| image | predicted | probability |", "|---|---|--:|"]
rows += [f"| {Path(p.path).parent.name}/{Path(p.path).name} | {p.classes[0]} | {p.probs[0]:.3f} |" for p in predictions]
display(Markdown("\n".join(rows)))

# %% [markdown]
# ## Explain and look inside

# %%
for explanation in explain_images(NAME, images[:2], folder / "gradcam").explanations:
    page.show(explanation.overlay, width=360)
page.show(plot_run_filters(NAME, folder / "filters.png").path, width=420)

# %% [markdown]
# ## Export
#
# ONNX, checked against the network by onnxruntime before it is written.

# %%
result = export(NAME, "onnx", folder / "resnet20.onnx")
print(result)

# %% [markdown]
# ## Serve
#
# `moderncnn serve weights:resnet20-cifar10` starts the HTTP API and the page to explore the network. The same
# server, started from Python on a free port, answering one request:

# %%
import httpx  # noqa: E402

from moderncnn.serve import create_app, load_model  # noqa: E402
from moderncnn.serve.background import running  # noqa: E402

with running(create_app(load_model(NAME))) as url:
    answer = httpx.post(f"{url}/predict", files={"file": images[0].read_bytes()}, timeout=60).json()
print(answer)
