"""Mail livecart sends on its own, in the language of the account it goes to (decision 0047):
the text is the catalog's (web/i18n/*.json), the links the site's."""

from __future__ import annotations

from live.follows import Told
from people.mail import Mail
from web.i18n import translate


def went_live_mail(one: Told, site_url: str) -> Mail:
    """A followed creator (or a room someone asked to be reminded of) is live."""
    values = {
        "name": one.display_name,
        "seller": one.seller_name,
        "title": one.title,
        "link": f"{site_url}/live/{one.room_id}",
    }
    return Mail(
        to=one.email,
        subject=translate(one.lang, "mail_live_subject", **values),
        text=translate(one.lang, "mail_live_body", **values),
    )
