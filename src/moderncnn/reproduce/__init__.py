"""Reproduce published results: recipes (data files) and the runner that trains and compares them."""

from moderncnn.reproduce.run import reproduce
from moderncnn.run.recipes import BUDGETS, Network, Recipe, list_recipes, load_recipe

__all__ = ["BUDGETS", "Network", "Recipe", "list_recipes", "load_recipe", "reproduce"]
