"""A small staff-handbook corpus and spoken questions with known answer passages.

Used by the retrieval-quality tests (both databases) and by ``bench/retrieval_quality.py``.
Each answer is named by a phrase found in exactly one chunk. The documents share a lot of
vocabulary on purpose ("days", "staff", "request", "manager", "policy"), so a ranking
that does not weigh rare words above common ones gets some of them wrong.
"""

from __future__ import annotations

LEAVE = """# Leave policy

## Annual leave

Every member of staff is entitled to twenty-eight days of annual leave each year,
including public holidays. Part-time staff receive a pro-rata allowance. Leave requests
must be approved by your line manager before any travel is booked.

## Carrying over unused leave

Up to five unused days may be carried over into the next leave year. Days carried over
must be taken before the end of March, or they are lost. Managers may not approve a
carry-over of more than five days without written approval from human resources.

## Sick leave

If you are ill, tell your manager before ten o'clock on the first morning of absence.
For an absence longer than seven calendar days a fit note from a doctor is required.
Sick pay is paid at the full rate for the first twelve weeks of sickness in any year.

## Parental leave

Parents may take up to fifty-two weeks of parental leave. The first twenty-six weeks are
paid at the full rate. Please give at least fifteen weeks' notice before the expected
week of childbirth or adoption, so that cover can be arranged.

## Compassionate leave

After the death of a close relative, staff may take up to five days of paid
compassionate leave. Further unpaid leave can be agreed with your manager. No evidence is
needed and the request is treated in confidence.
"""

EXPENSES = """# Expenses and travel

## Submitting a claim

Claims are submitted through the finance portal within thirty days of the expense,
with a photograph of every receipt attached. Claims older than ninety days are not
reimbursed. Your manager approves the claim and finance pays it in the next payroll run.

## Train travel

Book trains in standard class through the travel desk at least seven days ahead where
possible. First class is allowed only for journeys longer than four hours. Railcards
bought for business travel can be claimed back.

## Flights

Flights need the approval of a director before booking. Economy class is used for flights
under six hours; premium economy may be booked for longer flights. Baggage fees for one
checked bag are reimbursed.

## Meals and subsistence

When travelling overnight, meals are reimbursed up to forty-five pounds per day. Alcohol
is never reimbursed. Client dinners need the prior approval of your manager and a list of
the guests on the claim.

## Mileage

Business journeys in your own car are paid at forty-five pence per mile for the first ten
thousand miles in a tax year and twenty-five pence per mile after that. Commuting between
home and your usual office is not a business journey.
"""

IT_SECURITY = """# IT and security

## Passwords

Passwords must be at least fourteen characters long and unique to each service. Use the
company password manager to generate and store them. Never share a password, not even
with the IT service desk, who will never ask for it.

## Multi-factor authentication

Multi-factor authentication is required for email, the finance portal and remote access.
Use the authenticator app on your work phone; text-message codes are accepted only while a
replacement phone is on its way.

## Lost or stolen devices

Report a lost or stolen laptop or phone to the IT service desk immediately, by calling
extension 4444, at any hour. The device will be wiped remotely. A police crime reference
number is needed for an insurance claim.

## Phishing

Forward suspicious emails to phishing@example.org and then delete them. Do not click links
or open attachments in a message you did not expect. Reporting a mistake quickly is always
better than hiding it; nobody is disciplined for reporting.

## Software installation

Only software from the company catalogue may be installed on work laptops. To request new
software, raise a ticket with the IT service desk giving a business reason; security
review takes up to ten working days.
"""

FACILITIES = """# Facilities

## Opening hours

The office is open from seven in the morning until eight in the evening on weekdays.
Weekend access needs a request to facilities two working days in advance. The building
is closed between Christmas and New Year.

## Visitors

Visitors sign in at reception and wear a visitor badge at all times. Hosts must meet their
visitors in the lobby and escort them. Visitor parking spaces can be booked with reception
a day ahead.

## Fire safety

When the fire alarm sounds, leave by the nearest exit without collecting belongings and
go to the assembly point in the north car park. Fire marshals wear yellow vests. The alarm
is tested every Wednesday at eleven o'clock.

## Cycling and showers

Secure bicycle storage is in the basement, reached by the ramp on Mill Street. Showers and
lockers are on the lower ground floor; lockers are emptied every Friday evening.

## Meeting rooms

Meeting rooms are booked in the calendar. A booking not claimed within fifteen minutes is
released automatically. Rooms with video conferencing are on the third floor.
"""

DOCUMENTS: list[tuple[str, str]] = [
    ("leave-policy.md", LEAVE),
    ("expenses-and-travel.md", EXPENSES),
    ("it-and-security.md", IT_SECURITY),
    ("facilities.md", FACILITIES),
]

# (question as a person would ask it, a phrase of the chunk that answers it)
QUESTIONS: list[tuple[str, str]] = [
    ("How many days of holiday do I get each year?", "twenty-eight days of annual leave"),
    ("Can I carry unused leave over into next year?", "Up to five unused days"),
    ("What should I do if I'm sick?", "tell your manager before ten o'clock"),
    ("When do I need a doctor's fit note?", "fit note from a doctor"),
    ("How much parental leave can parents take?", "fifty-two weeks of parental leave"),
    ("How long can I take off when a relative dies?", "compassionate leave"),
    ("How do I submit an expense claim?", "finance portal within thirty days"),
    ("Can I travel first class on the train?", "First class is allowed only"),
    ("Do flights need approval before booking?", "approval of a director"),
    ("What is the meal allowance when travelling overnight?", "forty-five pounds per day"),
    ("What is the mileage rate for my own car?", "pence per mile"),
    ("How long must my password be?", "fourteen characters"),
    ("Which authenticator should I use for multi-factor authentication?", "authenticator app"),
    ("I lost my laptop, who do I call?", "extension 4444"),
    ("What do I do with a suspicious phishing email?", "phishing@example.org"),
    ("How can I install new software on my laptop?", "company catalogue"),
    ("What are the office opening hours at the weekend?", "Weekend access"),
    ("Where do visitors sign in?", "Visitors sign in at reception"),
    ("Where is the fire assembly point?", "assembly point in the north car park"),
    ("Where can I store my bicycle and shower?", "Secure bicycle storage"),
    ("How do I book a meeting room with video conferencing?", "Meeting rooms are booked"),
    # Common words point elsewhere here; only the rare word names the topic.
    ("Is alcohol reimbursed on my expenses?", "Alcohol is never reimbursed"),
    ("Can I claim back the cost of a checked bag?", "checked bag are reimbursed"),
    ("Do I need evidence to take leave after a death?", "No evidence is needed"),
    ("Which days is the office closed over the holidays?", "closed between Christmas"),
    ("What if I click a link in a strange email?", "Do not click links"),
]
