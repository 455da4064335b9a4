"""desed_task: sound event detection research code (DESED, DCASE Task 4 recipes); see README.md."""
import warnings

# Warnings that dependencies raise about their own dependencies, at every run, and that users cannot act on:
# dcase_util (imported by sed_eval, itself imported by sed_scores_eval) imports the deprecated pkg_resources;
# pytorch_lightning 2.6 builds torch's deprecated LeafSpec at every fit and test.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning, module="dcase_util")
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning,
                        module="pytorch_lightning")
