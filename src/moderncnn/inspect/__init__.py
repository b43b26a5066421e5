"""Look inside a network: learned filters, feature maps, attribution maps and the loss landscape.

Each picture has a function on a network (``nn.Module``) and inputs, and one on a trained run (a run directory or a
``.ckpt`` file) that loads the network and preprocesses images as evaluation does:

- :func:`plot_filters` / :func:`plot_run_filters`: a convolution's filters as an image grid;
- :func:`feature_maps`, :func:`plot_feature_maps` / :func:`plot_run_features`: activations per stage or layer
  (``torchvision.models.feature_extraction``), :func:`layer_names` the nodes that can be asked for;
- :func:`attribute` / :func:`explain_images`: Grad-CAM, Grad-CAM++, saliency or integrated gradients (Captum),
  overlays and raw maps;
- :func:`random_directions`, :func:`loss_surface` / :func:`plot_run_landscape`: the loss around the trained
  weights along filter-normalised random directions.
"""

from moderncnn.inspect.attribution import METHODS, Attribution, attribute
from moderncnn.inspect.common import default_layer
from moderncnn.inspect.explain import ExplainResult, Explanation, explain_images
from moderncnn.inspect.features import (
    FeaturePlot,
    feature_maps,
    layer_names,
    plot_feature_maps,
    plot_run_features,
    run_layer_names,
    stages,
)
from moderncnn.inspect.filters import FilterPlot, filter_grid, filter_tiles, plot_filters, plot_run_filters
from moderncnn.inspect.landscape import (
    Landscape,
    loss_surface,
    plot_landscape,
    plot_run_landscape,
    random_directions,
    training_subset,
)

__all__ = [
    "METHODS",
    "Attribution",
    "ExplainResult",
    "Explanation",
    "FeaturePlot",
    "FilterPlot",
    "Landscape",
    "attribute",
    "default_layer",
    "explain_images",
    "feature_maps",
    "filter_grid",
    "filter_tiles",
    "layer_names",
    "loss_surface",
    "plot_feature_maps",
    "plot_filters",
    "plot_landscape",
    "plot_run_features",
    "plot_run_filters",
    "plot_run_landscape",
    "random_directions",
    "run_layer_names",
    "stages",
    "training_subset",
]
