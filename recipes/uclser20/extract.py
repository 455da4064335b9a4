"""UCLSER feature extraction: python recipes/uclser20/extract.py -p confs/uclser20/params_unsupervised_cl.yaml
[--workers N] [data.root=...] -> FSDnoisy18k_{noisy,clean,test}.hdf5 in data.hdf5_dir."""
from desed_task.training.run_uclser import extract_main

if __name__ == "__main__":
    extract_main()
