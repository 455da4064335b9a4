"""desed_task: sound event detection research code (DESED, DCASE Task 4 recipes); see README.md."""
import warnings

# Warnings that dependencies raise about their own dependencies, at every run, and that users cannot act on:
# dcase_util (imported by sed_eval, itself imported by sed_scores_eval) imports the deprecated pkg_resources;
# pytorch_lightning 2.6 builds torch's deprecated LeafSpec at every fit and test. Lightning's notice that a checkpoint
# folder is not empty is about the run's own config.yaml: the recipes choose a fresh folder (`training.run.run_folder`).
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning, module="dcase_util")
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning,
                        module="pytorch_lightning")
warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty", category=UserWarning,
                        module="pytorch_lightning")
