"""An adopted central server's houses belong to no site until the operator assigns them;
then that site's key pushes into them, and no other site's."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from models import Deployment, House, Site
from models.base import table_of
from rest.cli import main
from tests.live_server import create_key
from tests.rest.conftest import client, map_body, next_node_id, unique


def test_a_house_of_no_site_is_refused_until_assigned_then_only_its_site_writes(server, db,
                                                                                capsys):
    deployment, address = unique("adopted"), unique("1 Elm Road")
    with db.begin() as conn:  # as adoption leaves it: no owner
        dep = conn.execute(insert(table_of(Deployment)).values(name=deployment)
                           ).inserted_primary_key[0]
        conn.execute(insert(table_of(House)).values(deploymentId=dep, address=address))
    site, other = unique("station"), unique("station")
    mine = client(server, create_key(server.db_url, site))
    theirs = client(server, create_key(server.db_url, other))
    body = map_body(deployment, address, unique("room"), next_node_id())
    refused = mine.post("sync/map/", json=body).json()
    assert any(e["type"] == "house" for e in refused["errors"]), refused

    assert main(["houses", "list", "--db", server.db_url, "--unowned"]) == 0
    assert address in capsys.readouterr().out
    assert main(["houses", "assign", "--db", server.db_url, "--site", site,
                 "--deployment", deployment]) == 0
    assert f"now belong to site {site!r}" in capsys.readouterr().out

    accepted = mine.post("sync/map/", json=body).json()
    assert accepted["errors"] == [], accepted
    body["node"][0]["key"] = body["sensor"][0]["node"] = next_node_id()
    assert any(e["type"] == "house" for e in theirs.post("sync/map/", json=body).json()["errors"])
    # Taking another site's house needs --force, and says whose it is.
    assert main(["houses", "assign", "--db", server.db_url, "--site", other,
                 "--deployment", deployment]) == 2
    assert site in capsys.readouterr().err
    with Session(db) as session:
        owner = session.execute(select(Site.name).join(House, House.siteId == Site.id)
                                .where(House.address == address)).scalar_one()
    assert owner == site
