"""UCLSER feature extraction: python recipes/uclser20/extract.py -p confs/uclser20/params_unsupervised_cl.yaml
[--workers N] [--report_dir D] [data.root=...] -> FSDnoisy18k_{noisy,clean,test}.hdf5 in data.hdf5_dir."""
import argparse
import sys

from desed_task.training.registry import SYSTEMS, prepare_features
from desed_task.training.run import resolve_system_config
from desed_task.utils.errors import InputError
from desed_task.utils.logs import configure_logging

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Extract UCLSER log-mel features of FSDnoisy18k to HDF5")
    parser.add_argument("-p", "--params", "--conf_file", dest="conf_file", required=True, help="UCLSER YAML config")
    parser.add_argument("--workers", type=int, default=1, help="extraction processes")
    parser.add_argument("--report_dir", default="exp/uclser20/data_reports", help="where skipped files are listed")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    args = parser.parse_args()
    configure_logging()
    try:
        config = resolve_system_config(args.conf_file, args.overrides, SYSTEMS["uclser"])
        for split, path in prepare_features(config["data"], args.report_dir, workers=args.workers).items():
            print(f"{split}: {path}")
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
