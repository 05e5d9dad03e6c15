"""The spec's "Configuration File Integration", runnable.

``load_coordination_config`` is the library's: it reads the spec's YAML file with the safe
loader, returns the defaults when the file is missing, and reports a wrong value with the
file and line it came from.

    .venv/bin/python examples/06_yaml_config.py
"""

import os
import tempfile
from pathlib import Path

from coordination import ConfigError, CoordinationConfig, load_coordination_config

# Configuration file example (config/coordination.yaml), exactly as in the spec
SPEC_YAML = """
enable_validation: true
validation_rules_path: "src/core/validation/rules"
max_retries: 3
base_delay: 1.0
backoff_multiplier: 2.0
circuit_breaker_threshold: 5
enable_performance_monitoring: true
collection_interval: 5.0
max_data_points: 1000
"""

with tempfile.TemporaryDirectory() as folder:
    os.chdir(folder)
    print(f"missing file -> defaults: {load_coordination_config() == CoordinationConfig()}")

    Path("config").mkdir()
    Path("config/coordination.yaml").write_text(
        SPEC_YAML.replace("max_retries: 3", "max_retries: 4")
    )
    config = load_coordination_config("config/coordination.yaml")
    print(f"max_retries = {config.max_retries} (from the file)")
    print(f"collection_interval = {config.collection_interval}")

    Path("config/coordination.yaml").write_text("max_retries: 3\nbase_delay: -1\n")
    try:
        load_coordination_config("config/coordination.yaml")
    except ConfigError as exc:
        print(f"rejected: {exc}")
    os.chdir("/")
