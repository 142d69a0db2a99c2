"""Generate many realistic leads for one firm, fast (COPY), for the picker benchmark.

Why a generator and not `leadsms import`: the benchmark needs a million signups with the
shape of real data (names, emails and phones that repeat across signups of one person,
a few unsendable phones) in well under a minute, without Lookup and without validation.
Rows go in with COPY; phones are valid E.164 US numbers by construction.

    python -m devtools.bench.generate_leads --firm 1 --count 1000000 [--seed 7]

(`DATABASE_URL` from the environment.) Not for production data.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import sys
import time
from typing import Iterator

import asyncpg

FIRST = (
    "James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara Richard Susan "
    "Joseph Jessica Thomas Sarah Charles Karen Christopher Nancy Daniel Lisa Matthew Betty Anthony Margaret "
    "Mark Sandra Donald Ashley Steven Kimberly Paul Emily Andrew Donna Joshua Michelle Kenneth Dorothy Kevin "
    "Carol Brian Amanda George Melissa Edward Deborah Ronald Stephanie Timothy Rebecca Jason Sharon Jeffrey "
    "Laura Ryan Cynthia Jacob Kathleen Gary Amy Nicholas Shirley Eric Angela Jonathan Helen Stephen Anna "
    "Larry Brenda Justin Pamela Scott Nicole Brandon Emma Benjamin Samantha Samuel Katherine Gregory "
    "Christine Frank Debra Alexander Rachel Raymond Catherine Patrick Carolyn Jack Janet Dennis Ruth Jerry "
    "Maria Tyler Heather Aaron Diane Jose Virginia Adam Julie Henry Joyce Nathan Victoria Douglas Olivia "
    "Zachary Kelly Peter Christina Kyle Lauren Walter Joan Ethan Evelyn Jeremy Judith Harold Megan Keith "
    "Cheryl Christian Andrea Roger Hannah Noah Martha Gerald Jacqueline Carl Frances Terry Gloria Sean Ann "
    "Austin Teresa Arthur Kathryn Lawrence Sara Jesse Janice Dylan Jean Bryan Alice Joe Madison Jordan Doris "
    "Billy Abigail Bruce Julia Albert Judy Willie Grace Gabriel Denise Logan Amber Alan Marilyn Juan Beverly "
    "Wayne Danielle Roy Theresa Ralph Sophia Randy Marie Eugene Diana Vincent Brittany Russell Natalie "
    "Elijah Isabella Louis Charlotte Bobby Rose Philip Alexis Johnny Kayla Priya Wei Mohammed Fatima Hiroshi "
    "Yuki Olga Dmitri Ingrid Lars Siobhan Aoife Mateo Lucia Chidi Amara Santiago Valentina Ravi Ananya"
).split()

LAST = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez "
    "Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark "
    "Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams "
    "Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker Cruz "
    "Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson "
    "Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood James Bennett Gray "
    "Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster Jimenez Powell Jenkins "
    "Perry Russell Sullivan Bell Coleman Butler Henderson Barnes Gonzales Fisher Vasquez Simmons Romero "
    "Jordan Patterson Alexander Hamilton Graham Reynolds Griffin Wallace Moreno West Cole Hayes Bryant "
    "Herrera Gibson Ellis Tran Medina Aguilar Stevens Murray Ford Castro Marshall Owens Harrison Fernandez "
    "McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman Webb Tucker Guzman Burns Crawford "
    "Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason Dixon Munoz Hunt Hicks Holmes Palmer "
    "Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren Mills Meyer Rice Schmidt Garza Daniels "
    "Ferguson Nichols Stephens Soto Weaver Ryan Gardner Payne Grant Dunn Kelley Spencer Hawkins Arnold "
    "Pierce Vazquez Hansen Peters Santos Hart Bradley Knight Elliott Cunningham Duncan Armstrong Hudson "
    "Carroll Lane Riley Andrews Alvarado Ray Delgado Berry Perkins Hoffman Johnston Matthews Pena Richards "
    "Contreras Willis Carpenter Lawrence Sandoval Guerrero George Chapman Rios Estrada Ortega Watkins Greene "
    "Nunez Wheeler Valdez Harper Burke Larson Santiago Maldonado Morrison Franklin Carlson Austin Dominguez "
    "Carr Lawson Jacobs Obrien Lynch Singh Vega Bishop Montgomery Oliver Jensen Harvey Williamson Gilbert "
    "Dean Sims Espinoza Howell Li Wong Reid Hanson Le McCoy Garrett Burton Fuller Wang Weber Welch Rojas "
    "Lucas Marquez Fields Park Yang Little Banks Padilla Day Walsh Bowman Schultz Luna Fowler Mejia Davidson "
    "Acosta Brewer May Holland Juarez Newman Pearson Curtis Cortez Douglas Schneider Joseph Barrett Navarro "
    "Figueroa Keller Avila Wade Molina Stanley Hopkins Campos Barnett Bates Chambers Caldwell Beck Lambert "
    "Miranda Byrd Craig Ayala Lowe Frazier Powers Neal Leonard Gregory Carrillo Sutton Fleming Rhodes "
    "Shelton Schwartz Norris Jennings Watts Duran Walters Cohen McDaniel Moran Parks Steele Vaughn Becker "
    "Holt Deleon Barker Terry Hale Leon Hail Benson Haynes Horton Miles Lyons Pham Graves Bush Thornton "
    "Wolfe Warner Cabrera McKinney Mann Zimmerman Dawson Lara Fletcher Page McCarthy Love Robles Cervantes "
    "Solis Erickson Reeves Chang Klein Salinas Fuentes Baldwin Daniel Simon Velasquez Hardy Higgins Aguirre "
    "Lin Cummings Chandler Sharp Barber Bowen Ochoa Dennis Robbins Liu Ramsey Francis Griffith Paul Blair "
    "Oconnor Cardenas Pacheco Cross Calderon Quinn Moss Swanson Chan Rivas Khan Rodgers Serrano Fitzgerald "
    "Rosales Stevenson Christensen Manning Gill Curry McLaughlin Harmon McGee Gross Doyle Garner Newton "
    "Burgess Reese Walton Blake Trujillo Adkins Brady Goodman Roman Webster Goodwin Fischer Huang Potter "
    "Delacruz Montoya Todd Wu Hines Mullins Castaneda Malone Cannon Tate Mack Sherman Hubbard Hodges Zhang "
    "Guerra Wolf Valencia Saunders Franco Rowe Gallagher Farmer Hammond Hampton Townsend Ingram Wise "
    "Gallegos Clarke Barton Schroeder Maxwell Waters Logan Camacho Strickland Norman Person Colon Parsons "
    "Frank Harrington Glover Osborne Buchanan Casey Floyd Patton Ibarra Ball Tyler Suarez Bowers Orozco "
    "Salas Cobb Gibbs Andrade Bauer Conner Moody Escobar McGuire Lloyd Mueller Hartman French Kramer "
    "McBride Pope Lindsey Velazquez Norton McCormick Sparks Flynn Yates Hogan Marsh Macias Villanueva "
    "Zamora Pratt Stokes Owen Ballard Lang Brock Villarreal Charles Drake Barrera Cain Patrick Pineda Burnett "
    "Mercado Santana Shepherd Bautista Ali Shaffer Lamb Trevino McKenzie Hess Beil Olsen Cochran Morton "
    "Nash Wilkins Petersen Briggs Shah Roth Nicholson Holloway Lozano Rangel Flowers Hoover Short Arias "
    "Mora Valenzuela Bryan Meyers Weiss Underwood Bass Greer Summers Houston Carson Morrow Clayton Whitaker "
    "Decker Yoder Collier Zuniga Carey Wilcox Melendez Poole Roberson Larsen Conley Davenport Copeland "
    "Massey Lam Huff Rocha Cameron Jefferson Hood Monroe Anthony Pittman Huynh Randall Singleton Kirk "
    "Combs Mathis Christian Skinner Bradford Richard Galvan Wall Boone Kirby Wilkinson Bridges Bruce Atkinson "
    "Velez Meza Roy Vincent York Hodge Villa Abbott Allison Tapia Gates Chase Sosa Sweeney Farrell Wyatt "
    "Dalton Horn Barron Phelps Yu Dickerson Heath Foley Atkins Mathews Bonilla Acevedo Benitez Zavala "
    "Hensley Glenn Cisneros Harrell Shields Rubio Choi Huffman Boyer Garrison Arroyo Bond Kane Hancock "
    "Callahan Dillon Cline Wiggins Grimes Arellano Melton Oneill Savage Ho Beltran Pitts Parrish Ponce Rich "
    "Booth Koch Golden Ware Brennan McDowell Marks Cantu Humphrey Baxter Sawyer Clay Tanner Hutchinson Kaur "
    "Berg Wiley Gilmore Russo Villegas Hobbs Keith Wilkerson Ahmed Beard McClain Montes Mata Rosario Vang "
    "Walter Henson Oneal Mosley McClure Beasley Stephenson Snow Huerta Preston Vance Barry Johns Eaton "
    "Blackwell Dyer Prince Macdonald Solomon Guevara Stafford English Hurst Woodard Cortes Shannon Kemp "
    "Nolan McCullough Merritt Murillo Moon Salgado Strong Kline Cordova Barajas Roach Rosas Winters Jacobson "
    "Lester Knox Bullock Kerr Leach Meadows Orr Davila Whitehead Pruitt Kent Conway McKee Barr David Dejesus "
    "Marin Berger McIntyre Blankenship Gaines Palacios Cuevas Bartlett Durham Dorsey McCall Odonnell Stein "
    "Browning Stout Lowery Sloan McLean Hendricks Calhoun Sexton Chung Gentry Hull Duarte Ellison Nielsen "
    "Gillespie Buck Middleton Sellers Leblanc Esparza Hardin Bradshaw McIntosh Howe Livingston Frost Glass "
    "Morse Knapp Herman Stark Bravo Noble Spears Weeks Corona Frederick Buckley McFarland Hebert Enriquez "
    "Hickman Quintero Randolph Schaefer Walls Trejo House Reilly Pennington Michael Conrad Giles Benjamin "
    "Crosby Fitzpatrick Donovan Mays Mahoney Valentine Raymond Medrano Hahn McMillan Small Bentley Felix "
    "Peck Lucero Boyle Hanna Pace Rush Hurley Harding McConnell Bernal Nava Ayers Everett Ventura Avery Pugh "
    "Mayer Bender Shepard McMahon Landry Case Sampson Moses Magana Blackburn Dunlap Gould Duffy Vaughan "
    "Herring McKay Espinosa Rivers Farley Bernard Ashley Friedman Potts Truong Costa Correa Blevins Nixon "
    "Clements Fry Delarosa Best Benton Lugo Portillo Dougherty Crane Haley Phan Villalobos Blanchard Horne "
    "Finley Quintana Lynn Esquivel Bean Dodson Mullen Xiong Hayden Cano Levy Huber Richmond Moyer Lim Frye "
    "Sheppard McCarty Avalos Booker Waller Parra Woodward Jaramillo Krueger Rasmussen Brandt Peralta "
    "Donaldson Stuart Faulkner Maynard Galindo Coffey Estes Sanford Burch Maddox Vo Oconnell Vu Andersen "
    "Spence McPherson Church Schmitt Stanton Leal Cherry Compton Dudley Sierra Pollard Alfaro Hester Proctor "
    "Lu Hinton Novak Good Madden McCann Terrell Jarvis Dickson Reyna Cantrell Mayo Branch Hendrix Rollins "
    "Rowland Whitney Duke Odom Daugherty Travis Tang Archer"
).split()

NICK = {"Robert": "Bob", "William": "Bill", "Elizabeth": "Liz", "Richard": "Rick", "Michael": "Mike",
        "Jennifer": "Jen", "Katherine": "Kate", "Christopher": "Chris", "Joseph": "Joe", "Daniel": "Dan"}
DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "aol.com",
           "proton.me", "comcast.net", "mail.com", "fastmail.com")
EVENTS = ("Retirement Planning Seminar", "Medicare Made Simple", "Estate Planning Workshop",
          "Social Security Q&A", "Tax Strategies Dinner", "Annuity Basics Lunch", "Wealth Preservation Night")
# Area codes of real US geographies (valid for libphonenumber).
AREAS = ("212", "646", "718", "917", "310", "213", "415", "312", "773", "617", "305", "786", "404", "702",
         "206", "503", "512", "713", "214", "602", "303", "612", "313", "215", "412", "704", "919", "615",
         "502", "317", "614", "216", "414", "816", "913", "405", "918", "505", "801", "208")

COLUMNS = ("firm_id", "external_id", "name", "email", "event", "phone_raw", "phone_e164",
           "phone_status", "phone_error", "signed_up_at", "created_at")


def _phone(rng: random.Random) -> str:
    area = rng.choice(AREAS)
    exchange = rng.randint(201, 989)
    if exchange % 100 == 11:  # N11 exchanges are not valid
        exchange += 1
    return f"+1{area}{exchange:03d}{rng.randint(0, 9999):04d}"


def _raw_format(rng: random.Random, e164: str) -> str:
    n = e164[2:]
    return rng.choice((f"({n[:3]}) {n[3:6]}-{n[6:]}", f"{n[:3]}-{n[3:6]}-{n[6:]}", n, e164, f"+1 {n[:3]} {n[3:6]} {n[6:]}"))


def _signups_per_person(rng: random.Random) -> int:
    x = rng.random()
    return 1 if x < 0.72 else 2 if x < 0.92 else 3 if x < 0.98 else rng.randint(4, 6)


def rows(firm_id: int, count: int, seed: int, tag: str) -> Iterator[tuple]:
    """`count` signup rows, in signup order (as a CRM feeds them over three years).

    People have 1..6 signups; between them the email sometimes changes and the first
    name sometimes becomes a nickname, so a query can match an older signup only.
    About 2% have no phone, 1% an invalid one, 0.5% are still pending.
    """
    rng = random.Random(seed)
    now = dt.datetime.now(dt.timezone.utc)
    span_days = 3 * 365
    people: list[tuple] = []
    signups: list[tuple[float, int, int]] = []  # (days ago, person, k)
    while len(signups) < count:
        first, last = rng.choice(FIRST), rng.choice(LAST)
        phone = _phone(rng)
        x = rng.random()
        status, error = "valid", None
        if x < 0.02:
            status, phone = "missing", None
        elif x < 0.03:
            status, error = "invalid", "not_a_valid_number"
        elif x < 0.035:
            status = "pending"
        local = rng.choice((f"{first}.{last}", f"{first[0]}{last}", f"{first}{last[0]}",
                            f"{first}_{last}{rng.randint(1, 99)}")).lower()
        person = len(people)
        people.append((first, last, phone, status, error, f"{local}@{rng.choice(DOMAINS)}"))
        first_seen = rng.uniform(0, span_days)
        for k in range(min(_signups_per_person(rng), count - len(signups))):
            signups.append((max(0.0, first_seen - rng.uniform(0, 200) * k), person, k))
    signups.sort(key=lambda s: -s[0])  # oldest first: the heap fills in signup order
    for n, (days_ago, person, k) in enumerate(signups, 1):
        first, last, phone, status, error, email = people[person]
        if k and rng.random() < 0.3:
            first = NICK.get(first, first)
        if k and rng.random() < 0.15:
            email = f"{first}{rng.randint(1, 999)}@{rng.choice(DOMAINS)}".lower()
        signed = now - dt.timedelta(days=days_ago)
        yield (firm_id, f"{tag}-{n}", f"{first} {last}", email, rng.choice(EVENTS),
               _raw_format(rng, phone) if phone else None, phone if status != "pending" else None,
               status, error, signed, signed)


async def generate_leads(conn: asyncpg.Connection, firm_id: int, count: int, *, seed: int = 7,
                         tag: str | None = None, flag_share: float = 0.01) -> dict:
    """Insert `count` leads for the firm with COPY, plus some line types and firm flags.

    About 1% of phones get a known line type (some landlines) and about `flag_share` an
    opt-out or block, so the picker's sendable filter has something to filter.
    """
    tag = tag or f"gen{seed}"
    started = time.monotonic()
    batch: list[tuple] = []
    phones: set[str] = set()
    total = 0
    for row in rows(firm_id, count, seed, tag):
        batch.append(row)
        if row[6]:
            phones.add(row[6])
        if len(batch) >= 50_000:
            await conn.copy_records_to_table("leads", records=batch, columns=COLUMNS)
            total += len(batch)
            batch.clear()
    if batch:
        await conn.copy_records_to_table("leads", records=batch, columns=COLUMNS)
        total += len(batch)
    rng = random.Random(seed + 1)
    ordered = sorted(phones)
    sample = rng.sample(ordered, k=min(len(ordered), max(1, len(ordered) // 100)))
    await conn.copy_records_to_table(
        "phone_lines",
        records=[(p, True, "landline" if i % 5 == 0 else "mobile", "Sim Carrier") for i, p in enumerate(sample)],
        columns=("phone_e164", "valid", "line_type", "carrier"),
    )
    flagged = rng.sample(ordered, k=min(len(ordered), int(len(ordered) * flag_share)))
    await conn.executemany(
        """INSERT INTO phone_flags (firm_id, phone_e164, opted_out, opted_out_source, blocked, blocked_reason)
           VALUES ($1, $2, $3, CASE WHEN $3 THEN 'keyword:stop' END, NOT $3, CASE WHEN NOT $3 THEN 'filtered' END)
           ON CONFLICT DO NOTHING""",
        [(firm_id, p, i % 2 == 0) for i, p in enumerate(flagged)],
    )
    await conn.execute("ANALYZE leads")
    await conn.execute("ANALYZE phone_lines")
    await conn.execute("ANALYZE phone_flags")
    return {"firm_id": firm_id, "leads": total, "phones": len(phones),
            "seconds": round(time.monotonic() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    from shared.config import Settings

    parser = argparse.ArgumentParser(prog="python -m devtools.bench.generate_leads", description=__doc__.split("\n\n")[0])
    parser.add_argument("--firm", type=int, required=True)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    settings = Settings.for_command("import")

    async def run() -> dict:
        conn = await asyncpg.connect(settings.database_url)
        try:
            if not await conn.fetchval("SELECT 1 FROM firms WHERE id = $1", args.firm):
                raise SystemExit(f"no firm {args.firm}")
            return await generate_leads(conn, args.firm, args.count, seed=args.seed)
        finally:
            await conn.close()

    print(json.dumps(asyncio.run(run())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
