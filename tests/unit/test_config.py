import pytest

from k2.ops.config import ConfigError, load_settings


def test_defaults_work_on_a_fresh_machine(tmp_path):
    settings = load_settings({"K2_DATA_DIR": str(tmp_path)})
    assert settings.resolved_catalog_uri == f"sqlite:///{tmp_path}/catalog.db"
    assert settings.resolved_warehouse == (tmp_path / "warehouse").as_uri()
    assert settings.namespace == "market_data" and settings.source == "synthetic"


def test_kafka_is_the_source_once_a_broker_is_configured():
    assert load_settings({"K2_KAFKA_BOOTSTRAP": "broker:9092"}).source == "kafka"
    assert load_settings({"K2_KAFKA_BOOTSTRAP": "broker:9092", "K2_SOURCE": "synthetic"}).source == "synthetic"


def test_environment_strings_become_typed_values():
    settings = load_settings(
        {
            "K2_EPOCH_SECONDS": "0.5",
            "K2_BATCH_SIZE": "100",
            "K2_SOURCE": "file",
            "K2_INPUT_FILE": "x.ndjson",
            "K2_INPUT_KIND": "quote",
            "UNRELATED": "1",
        }
    )
    assert settings.epoch_seconds == 0.5 and settings.batch_size == 100 and settings.input_kind == "quote"
    assert settings.dedupe_horizon_us == 900_000_000


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"K2_BATCH_SIZE": "many"}, "K2_BATCH_SIZE"),
        ({"K2_SOURCE": "carrier-pigeon"}, "K2_SOURCE"),
        ({"K2_EPOCH_SECONDS": "0"}, "K2_EPOCH_SECONDS"),
        ({"K2_SOURCE": "kafka"}, "K2_KAFKA_BOOTSTRAP"),
        ({"K2_SOURCE": "file"}, "K2_INPUT_FILE"),
        ({"K2_MIN_TIMESTAMP_US": "5", "K2_MAX_TIMESTAMP_US": "4"}, "K2_MAX_TIMESTAMP_US"),
    ],
)
def test_bad_settings_name_the_variable(env, names):
    with pytest.raises(ConfigError, match=names):
        load_settings(env)


def test_external_catalog_and_warehouse_are_used_as_given():
    settings = load_settings({"K2_CATALOG_URI": "postgresql+psycopg2://k2@db/iceberg", "K2_WAREHOUSE": "s3://b/k2"})
    assert settings.resolved_catalog_uri.startswith("postgresql") and settings.resolved_warehouse == "s3://b/k2"
