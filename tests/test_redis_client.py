"""How a REDIS_URL picks its client: a single server, or a cluster with its startup nodes and
the same options (user, password, TLS) for every node; a URL no client could open stops
startup with a reason."""

from __future__ import annotations

import pytest

from kernel.redis_client import check_url, cluster_client, is_cluster, startup_nodes
from web.settings import Settings


def test_a_cluster_url_names_every_startup_node_and_keeps_the_options() -> None:
    url = "rediss+cluster://app:p%40ss@10.0.0.1:6379,10.0.0.2:6380/?ssl_cert_reqs=none"
    assert is_cluster(url)
    plain, nodes = startup_nodes(url)
    assert nodes == [("10.0.0.1", 6379), ("10.0.0.2", 6380)]
    assert plain == "rediss://app:p%40ss@10.0.0.1:6379/?ssl_cert_reqs=none"
    client = cluster_client(url)
    kwargs = client.connection_kwargs
    assert (kwargs["username"], kwargs["password"]) == ("app", "p@ss")
    assert kwargs["connection_class"].__name__ == "SSLConnection"


def test_single_server_urls_are_not_clusters() -> None:
    for url in ("redis://127.0.0.1:6379/15", "rediss://h:6380/0", "unix:///run/redis.sock"):
        assert not is_cluster(url)
        check_url(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis+cluster://10.0.0.1:6379/3", "database 0 only"),
        ("redis+cluster://10.0.0.1", "host:port"),
        ("redis+cluster://10.0.0.1:6379,:6380", "host:port"),
        ("http://10.0.0.1:6379", "redis://"),
    ],
)
def test_a_url_no_client_can_open_is_refused(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check_url(url)


def test_startup_refuses_a_bad_cluster_url_without_repeating_it() -> None:
    with pytest.raises(SystemExit) as stopped:
        Settings.from_env({"REDIS_URL": "redis+cluster://secret-host:6379/2"})
    assert "REDIS_URL" in str(stopped.value)
    assert "secret-host" not in str(stopped.value)
