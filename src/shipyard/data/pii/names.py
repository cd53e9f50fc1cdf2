"""Person names for the PII detector: "Given Surname" with Given in a built-in list of common given names, and
honorific + capitalised word(s). Yields ``(type, start, end)`` candidates like detect.py's other finders."""

from __future__ import annotations

import re
from collections.abc import Iterator

_UP = "A-Z\u00c0-\u00d6\u00d8-\u00de"
_LOW = "a-z\u00df-\u00f6\u00f8-\u00ff"
_CAP_WORD = rf"[{_UP}][{_LOW}]+(?:-[{_UP}][{_LOW}]+)?"
_SURNAME_WORD = rf"(?:O'|O\u2019|D'|Mc|Mac)?[{_UP}][{_LOW}]+(?:[{_UP}][{_LOW}]+)?(?:-[{_UP}][{_LOW}]+)?"
_PARTICLES = r"(?:van der|van den|van de|de la|de los|de las|von der|van|von|de|da|di|del|du|dos|das|ter|ten|le|bin)"
_GIVEN_RE = re.compile(rf"(?<![\w'\u2019-]){_CAP_WORD}(?![\w'\u2019])")
_MIDDLE_INITIAL = re.compile(rf" [{_UP}]\.(?= )")
_SURNAME_RE = re.compile(rf" (?:{_PARTICLES} )?(?P<word>{_SURNAME_WORD})(?![\w'\u2019])")
_HONORIFIC = re.compile(
    r"(?<![\w])(?:Mr|Mrs|Ms|Mx|Dr|Prof|Mme|Mlle|Sra|Srta|Sr)\.?(?= )|(?<![\w])(?:Sir|Dame|Herr|Frau|Miss)(?= )"
)
_HONORIFIC_NAME = re.compile(rf" +(?:{_PARTICLES} )?(?P<word>{_SURNAME_WORD})(?![\w'\u2019])")

# Common given names, written for this module. Words that are also ordinary English words or places (May, Will,
# Mark, Grace, Jack, Chase, Paris, Georgia ...) are left out on purpose.
_FIRST_NAMES_TEXT = """
    John Johannes Tom Tim Sam Ben Dan Joe Jim Mike Steve Chris Alex Kim Lucy Sophia Ava Mohammad Muhammad Tony
    Fred Ted Nancy Betty Ruth Kenneth Donald Ronald Larry Scott Jeffrey Carl Giuseppe Alessandro Federico Chiara
    Martina Yuto Hana
    Aaron Abigail Adam Adrian Agnieszka Ahmed Aisha Alan Albert Alejandro Alexander Alexandra Alexis Alfred Ali
    Alice Alicia Alina Alison Amanda Amelia Amit Amy Ana Anastasia Andrea Andreas Andrew Andrzej Angela Anil Anita
    Anja Anna Anne Annika Anthony Antoine Antonio Arjun Arthur Ashley Astrid Aurelie Barbara Beatriz Benjamin
    Bernard Beth Bianca Brandon Brian Camille Carla Carlos Carmen Caroline Catherine Cecilia Charles Charlotte
    Chen Chloe Christina Christine Christopher Claire Clara Claudia Colin Connor Craig Cristina Daniel Daniela
    Daniele David Deborah Deepak Denise Diana Diego Dmitri Dominik Donna Dorothy Edward Elena Elif Elisa
    Elizabeth Ella Ellen Emily Emma Emre Eric Erik Esther Ethan Eva Fabian Fatima Felix Fernando Fiona
    Francesca Francesco Francisco Franz Gabriel Gabriela Gareth Gary Gemma George Gerald Giorgio Giovanni Giulia
    Gregory Greta Hannah Hans Harry Heather Heidi Helen Helena Henrik Henry Hiroshi Hugo Ian Ibrahim Ines Ingrid
    Irene Isabel Isabella Ivan Jacob Jakub James Jan Jana Jane Janet Jason Javier Jean Jennifer Jens Jessica Joanna
    Joao Jonathan Jorge Jose Joseph Joshua Juan Julia Julian Julie Jun Justin Karen Karin Karl Katarzyna Kate
    Katharina Katherine Kathleen Kenji Kevin Kimberly Klaus Krzysztof Kumar Lars Laura Lauren Laurent Leah Lena
    Leon Leonardo Liam Linda Lisa Lorenzo Louis Louise Luca Lucas Lucia Luis Lukas Maciej Magdalena Manuel Marc
    Marco Margaret Maria Marie Marina Mario Marta Martin Mary Mateo Matteo Matthew Matthias Maximilian Megan Mehmet
    Melissa Michael Michelle Miguel Mikhail Min Mohammed Monica Nadia Natalia Natalie Nathan Nicholas Nicola
    Nicolas Nicole Niklas Nina Noah Nora Oliver Olga Olivia Omar Oscar Pablo Pamela Paolo Patricia Patrick Paul
    Paula Pedro Peter Philip Pierre Piotr Pooja Priya Rachel Rafael Rahul Raj Rajesh Ravi Rebecca Richard Robert
    Roberto Ryan Samantha Samuel Sandra Sara Sarah Sebastian Sergei Sergio Simon Simone Sofia Sophie Stefan
    Stefanie Stephanie Stephen Steven Susan Svetlana Takeshi Tatiana Teresa Thomas Timothy Tobias Tomasz Valentina
    Vanessa Victor Vikram Vincent Wei Wojciech Xavier Yan Yuki Yusuf Zainab Zoe Zofia Aditya Ananya Beatrice
    Benedikt Birgit Carlos Dieter Elke Emilia Florian Francois Gunther Hamid Hassan Hyun Ingrid Jin Johan Jonas
    Jurgen Kai Karolina Khalid Lea Leila Lin Ling Marek Mariana Marius Mateusz Mei Mia Mohamed Nadine Naoko Neha
    Nils Ole Pascal Petra Ramon Rosa Sabine Sanjay Sebastien Sofie Soren Sunita Sven Thiago Ulrike Ursula Uwe
    Vera Werner Wolfgang Yasmin Yusuke Emil Jorg Jose Andre Helene Elodie Celine Jerome Frederic Rene Zoltan
    Istvan Laszlo Agnes Bogdan Ioana Andrei Mihai Elif Ayse Fatma Mustafa Kerem Selin Aryan Kavya Lakshmi
    Suresh Ramesh Mahesh Anjali Deepika Hiroko Haruto Sakura Yuna Minjun Jiwoo Seojun Xiaoming Jing Hui
    Stuart Graham Neil Keith Derek Trevor Nigel Wendy Sharon Tracy Brenda Carol Janice Lorraine Moira Siobhan
    Sean Declan Niamh Aoife Ciaran Eoin Rhys Owen Dylan Gwen Morgan Bethan Alistair Hamish Kirsty Callum
    Kyle Tyler Zachary Brittany Kayla Courtney Jasmine Danielle Heidi Marcus Russell Howard Douglas Raymond
    Dennis Walter Harold Roger Terry Ralph Lawrence Wayne Roy Eugene Louis Philip Bruce Vincent Albert Willie
    Dolores Gloria Theresa Beverly Judith Cheryl Mildred Katie Jacqueline Martha Frances Ann Joan Evelyn Jean
    Sofía José María Jérôme Frédéric Hélène Élodie Céline Zoë Jürgen Jörg Sören Günther Françoise François
    Agnès André René Renée Inés Raúl Álvaro Joaquín Martín Ramón Léa Benoît Loïc Gaëlle Björn Åsa Øystein
"""
FIRST_NAMES: frozenset[str] = frozenset(_FIRST_NAMES_TEXT.split())

# Capitalised words that are not surnames even after a listed given name.
_NOT_SURNAME_TEXT = """
    The A An And Or But If Of In On At To For From With By As Is Are Was Were Be Been Has Have Had Do Does Did
    I We You He She They It This That These Those My Your Our Their His Her Its Me Us Them Who What When Where
    Why How Which Yes No Not Please Thanks Thank Regards Dear Hello Hi Hey Best Kind Cheers Sincerely Sorry
    Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May June July August
    September October November December Mon Tue Wed Thu Fri Sat Sun Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct Nov
    Dec Street St Road Rd Avenue Ave Lane Ln Drive Dr Boulevard Blvd Way Court Ct Place Square Plaza Bridge
    Station Airport Hotel Bank Banking Card Cards Account Accounts Support Team Customer Customers Service
    Services Desk Help Center Centre Inc Ltd Llc Corp Company Co Group Holdings Airlines Airways University
    College School Hospital Clinic Store Shop Online Mobile App Pay Visa Mastercard Express Order Orders Invoice
    Ticket Case Refund Payment Delivery Shipping Account Billing Sales Manager Director Admin Administrator
    Department Dept Office Branch City County State North South East West Central New Old Pro Max Plus Mini
    Premium Gold Silver Platinum Edition Version Update Release Home Care Insurance Energy Gas Water Electric
    Mail Email Phone Tel Fax Cc Bcc Re Fwd Subject Note Notes Agent User Users Client Clients Member Members
    Jr Jnr Snr Sr Esq Ii Iii
    Here There Today Tomorrow Yesterday Now Then Also Just Still Only Every All Any Some Each Both
"""
_NOT_SURNAME: frozenset[str] = frozenset(_NOT_SURNAME_TEXT.split())


def find_person_name(text: str) -> Iterator[tuple[str, int, int]]:
    for m in _GIVEN_RE.finditer(text):
        if m.group() not in FIRST_NAMES:
            continue
        pos = m.end()
        mid = _MIDDLE_INITIAL.match(text, pos)
        if mid:
            pos = mid.end()
        else:  # a second listed given name followed by a surname: "Mary Ann Smith"
            second = _SURNAME_RE.match(text, pos)
            if second and second.group("word") in FIRST_NAMES:
                third = _SURNAME_RE.match(text, second.end())
                if third and third.group("word") not in _NOT_SURNAME:
                    pos = second.end()
        sur = _SURNAME_RE.match(text, pos)
        if sur and sur.group("word") not in _NOT_SURNAME:
            yield "person_name", m.start(), sur.end()
    for h in _HONORIFIC.finditer(text):
        first = _HONORIFIC_NAME.match(text, h.end())
        if not first or first.group("word") in _NOT_SURNAME:
            continue
        start = first.end() - len(first.group().lstrip())
        end = first.end()
        second = _SURNAME_RE.match(text, end)
        if second and second.group("word") not in _NOT_SURNAME:
            end = second.end()
        yield "person_name", start, end
