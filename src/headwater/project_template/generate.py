"""Regenerate the example shop's data files: ``python -m headwater.project_template.generate``.

Deterministic (a fixed seed, fixed dates) so the committed files only change when this
script does. A handful of rows are wrong on purpose, one per kind of problem Headwater
should report without stopping: a bad email, loyalty points that are not a number, a
missing customer id, a first name longer than Braze's 255 characters, a duplicated
customer id, an order without a price and a reward without a time. The newsletter's
subscribers overlap the CRM by email (written any which way) or customer id, with a test
address shared by several sign-ups and an email that is not one, for identity resolution.
"""

from __future__ import annotations

import csv
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

SEED = 20240501
CONTACTS = 2_000
ORDERS = 4_000
REWARDS = 600
START = datetime(2023, 1, 1, tzinfo=UTC)

FIRST = "Ada Alan Alice Amir Ana Ben Chloe Dan Eva Farah Gus Hana Ivan Jade Kofi Lea Liam Mei Nina Omar Paul Rosa Sam Tara Yuki Zoe".split()
LAST = "Martin Bernard Dubois Smith Garcia Muller Rossi Silva Kowalski Nguyen Tanaka Okafor Haddad Jensen Novak Moreau Costa Weber".split()
COUNTRIES = ["FR", "DE", "GB", "US", "ES", "IT", "NL", "BE", "PT", "SE"]
DIAL = {"FR": "+33", "DE": "+49", "GB": "+44", "US": "+1", "ES": "+34", "IT": "+39",
        "NL": "+31", "BE": "+32", "PT": "+351", "SE": "+46"}  # fmt: skip


def phone_number(country: str, digits: int) -> str:
    """A plausible mobile number: North American numbers need a 3-digit area code."""
    if country == "US":
        return f"+1415{digits % 10_000_000:07d}"
    return f"{DIAL[country]}6{digits}"


TAGS = ["newsletter", "sms", "early_access", "wholesale", "returns"]
PRODUCTS = [("SKU-TEE", 19.0), ("SKU-HOODIE", 49.0), ("SKU-CAP", 15.0), ("SKU-MUG", 12.5),
            ("SKU-SOCKS", 9.0), ("SKU-BAG", 35.0), ("SKU-BOTTLE", 22.0)]  # fmt: skip
CURRENCIES = {"US": "USD", "GB": "GBP", "SE": "SEK"}


def customer_id(n: int) -> str:
    return f"C{n:05d}"


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def contacts(rng: random.Random) -> list[dict[str, object]]:
    rows = []
    for n in range(1, CONTACTS + 1):
        first, last, country = rng.choice(FIRST), rng.choice(LAST), rng.choice(COUNTRIES)
        rows.append(
            {
                "customer_id": customer_id(n),
                "email": f"{first}.{last}{n}@example.com".lower(),
                "first_name": first,
                "last_name": last,
                "phone": phone_number(country, rng.randrange(10_000_000, 99_999_999)),
                "country": country,
                "loyalty_points": rng.randrange(0, 5_000),
                "is_vip": "true" if rng.random() < 0.08 else "false",
                "signed_up_at": iso(START + timedelta(minutes=rng.randrange(0, 700_000))),
                "tags": ";".join(sorted(rng.sample(TAGS, rng.randrange(0, 3)))),
            }
        )
    rows[41]["email"] = "not-an-email"
    rows[97]["loyalty_points"] = "lots"
    rows[150]["customer_id"] = ""
    rows[233]["first_name"] = "A" * 300
    rows[318]["customer_id"] = rows[317]["customer_id"]
    return rows


def orders(rng: random.Random) -> list[dict[str, object]]:
    rows = []
    for n in range(1, ORDERS + 1):
        product, price = rng.choice(PRODUCTS)
        customer = rng.randrange(1, CONTACTS + 1)
        rows.append(
            {
                "order_id": f"O{n:06d}",
                "customer_id": customer_id(customer),
                "product_id": product,
                "price": price,
                "quantity": rng.choice((1, 1, 1, 2, 3)),
                "currency": CURRENCIES.get(COUNTRIES[customer % len(COUNTRIES)], "EUR"),
                "ordered_at": iso(START + timedelta(minutes=rng.randrange(0, 700_000))),
            }
        )
    rows[77]["price"] = ""
    return rows


def rewards(rng: random.Random) -> list[dict[str, object]]:
    rows = []
    for n in range(1, REWARDS + 1):
        customer = customer_id(rng.randrange(1, CONTACTS + 1))
        rows.append(
            {
                "id": f"rw_{n:05d}",
                "type": "reward_earned",
                "program": rng.choice(["refer-a-friend", "double-points-week"]),
                "person": {"partner_user_id": customer, "email": f"{customer.lower()}@example.com"},
                "reward": {
                    "type": rng.choice(["coupon", "points"]),
                    "value": rng.choice([5, 10, 20]),
                },
                "created_at": iso(START + timedelta(minutes=rng.randrange(0, 700_000))),
            }
        )
    rows[12]["created_at"] = None
    return rows


NEWSLETTER = 800


def newsletter(rng: random.Random, crm: list[dict[str, object]]) -> list[dict[str, object]]:
    """Sign-ups from the newsletter tool: 500 CRM contacts by email (written any which way),
    150 by customer id (signed up while logged in, with another email), 150 new people."""
    rows = []
    known = rng.sample(crm[400:], 650)
    for n in range(1, NEWSLETTER + 1):
        customer = ""
        if n <= 650:
            contact = known[n - 1]
            first, email = str(contact["first_name"]), str(contact["email"])
            email = rng.choice([email, email.upper(), f" {email} ", email.title()])
            if n > 500:
                customer = str(contact["customer_id"])
                email = f"{first.lower()}.{n}@work.example.net"
        else:
            first = rng.choice(FIRST)
            email = f"{first.lower()}.reader{n}@example.org"
        rows.append(
            {
                "subscriber_id": f"nl-{n:04d}",
                "email": email,
                "customer_id": customer,
                "first_name": first,
                "subscribed_at": iso(START + timedelta(minutes=rng.randrange(0, 700_000))),
            }
        )
    for row in rows[700:706]:
        row["email"] = "test@example.com"  # shared by 6 sign-ups: over the limit, links nobody
    rows[710]["email"] = "reader at example dot org"
    return rows


def write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main(target: Path | None = None) -> None:
    data = (target or Path(__file__).parent) / "data"
    data.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    crm = contacts(rng)
    write_csv(data / "contacts.csv", crm)
    write_csv(data / "orders.csv", orders(rng))
    with (data / "rewards.ndjson").open("w", encoding="utf-8") as fh:
        for row in rewards(rng):
            fh.write(json.dumps(row, separators=(",", ":")) + "\n")
    write_csv(data / "newsletter.csv", newsletter(random.Random(SEED + 1), crm))


if __name__ == "__main__":
    main()
