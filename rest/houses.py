"""Which site owns which house on a central server.

A house a base station creates through the map belongs to that station's site. Houses
that were on the server before any key existed — a central database adopted from
Cogent-house — belong to no site until the operator assigns them, so that the right
base station (and only it) can push into them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Deployment, House, Site
from rest.keys import KeyProblem, get_or_create_site


@dataclass(frozen=True)
class HouseInfo:
    id: int
    deployment: str | None
    address: str | None
    site: str | None


def list_houses(session: Session, site: str | None = None, unowned: bool = False
                ) -> list[HouseInfo]:
    stmt = (select(House.id, Deployment.name, House.address, Site.name)
            .outerjoin(Deployment, Deployment.id == House.deploymentId)
            .outerjoin(Site, Site.id == House.siteId).order_by(House.id))
    if site is not None:
        stmt = stmt.where(Site.name == site)
    if unowned:
        stmt = stmt.where(House.siteId.is_(None))
    return [HouseInfo(*row) for row in session.execute(stmt)]


def assign_houses(session: Session, site: str, *, deployment: str | None = None,
                  address: str | None = None, force: bool = False) -> list[HouseInfo]:
    """Give the houses of ``deployment`` (and ``address``) to ``site``; the caller commits.
    A house another site owns is refused unless ``force``."""
    if deployment is None and address is None:
        raise KeyProblem("say which houses: --deployment NAME and/or --address ADDRESS")
    stmt = select(House).outerjoin(Deployment, Deployment.id == House.deploymentId)
    if deployment is not None:
        stmt = stmt.where(Deployment.name == deployment)
    if address is not None:
        stmt = stmt.where(House.address == address)
    houses = list(session.execute(stmt).scalars())
    if not houses:
        what = " and ".join(f"{k} {v!r}" for k, v in (("deployment", deployment),
                                                      ("address", address)) if v is not None)
        raise KeyProblem(f"no house with {what}; 'cogent-rest houses list' shows them")
    target = get_or_create_site(session, site)
    owners = {s.id: s.name for s in session.execute(select(Site)).scalars()}
    taken = [h for h in houses if h.siteId not in (None, target.id)]
    if taken and not force:
        names = ", ".join(f"{h.address!r} ({owners[h.siteId]})" for h in taken[:5])  # type: ignore[index]
        raise KeyProblem(f"{len(taken)} of these houses belong to another site: {names}; "
                         f"pass --force to move them to {site!r}")
    for h in houses:
        h.siteId = target.id
    session.flush()
    return [HouseInfo(h.id, deployment, h.address, site) for h in houses]
