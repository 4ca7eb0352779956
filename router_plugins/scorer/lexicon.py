"""Keyword cues: everyday words that signal a domain a tag description names only abstractly."""

from __future__ import annotations

# trigger stems (any in a tag's name or description) → cue words a prompt in that domain tends to use.
# Prompts rarely repeat a tag's words ("my card was billed twice" vs "billing, refunds"); these bridge the gap.
CONCEPTS: tuple[tuple[frozenset[str], str], ...] = tuple(
    (frozenset(triggers.split()), cues)
    for triggers, cues in (
        (
            "bill billing refund refunds payment payments invoice invoices charge charges subscription pricing",
            "charged billed charge refund money back chargeback invoice invoiced receipt payment paid card credit "
            "transaction subscription price cost plan renewal prorated proration vat tax statement declined",
        ),
        (
            "account login password profile sign access authentication sso",
            "password log in sign in locked out verification code username email profile 2fa two-factor "
            "reset link credentials deactivated ownership delete account",
        ),
        (
            "bug bugs error errors crash crashes troubleshooting technical outage",
            "crash crashes error freezes freeze blank broken not working stopped spins load fails failing "
            "timeout 500 429 slow stuck glitch went wrong update reinstall",
        ),
        (
            "order orders delivery shipping tracking returns return shipment",
            "package parcel delivered arrive arrival tracking number order ship courier carrier customs "
            "send back return damaged box address warehouse pallets",
        ),
        (
            "code coding programming debugging software developer",
            "python javascript java rust go function class variable bug compile error exception regex "
            "git api react sql query loop array string int pointer refactor implement script test pytest",
        ),
        (
            "math mathematics calculations calculation proofs proof statistics arithmetic algebra",
            "solve equation integral derivative prime probability mean standard deviation percent times "
            "divided square root prove theorem matrix compute convert miles kilometers degrees",
        ),
        (
            "writing creative stories story poems poem copy editing",
            "poem haiku limerick rhyme story novel chapter toast letter rewrite grammar tone paragraph "
            "blurb ballad verse synonym sentence edit draft",
        ),
        (
            "general knowledge trivia chat casual conversation",
            "hi hello thanks who what capital population tallest painted won famous history why how "
            "recommend world country",
        ),
        (
            "legal law contracts contract compliance regulations regulation lawyer",
            "lawyer sue lawsuit court lease landlord deposit agreement clause liability copyright nda "
            "gdpr will attorney binding termination jurisdiction rights",
        ),
        (
            "finance financial accounting budgeting budget investing investment tax",
            "money savings loan interest stocks bonds index fund ira ebitda balance sheet cash flow "
            "revenue profit taxes retirement break-even valuation",
        ),
        (
            "marketing advertising branding brand social media campaigns seo",
            "slogan ads instagram tiktok linkedin facebook followers email campaign audience brand "
            "positioning influencer content sale promotion competitor",
        ),
        (
            "hiring hr employee employees interviews recruiting policy staff",
            "job posting candidate interview salary raise vacation onboarding team member manager "
            "layoff harassment performance review complaint remote",
        ),
        (
            "health medical symptoms medications medicine doctor",
            "pain ache sore headache fever cough rash itch throat flu cold blood pressure heart rate "
            "pill ibuprofen dose side effects sleep doctor prescribed diabetes",
        ),
        (
            "exercise workouts workout fitness training gym",
            "run running pushups squat deadlift gym stretch muscle cardio yoga marathon weights lift "
            "reps sets protein lose fat pull-ups sprint",
        ),
        (
            "recipes recipe cooking baking food",
            "boil bake oven dinner chicken egg bread dough sauce onions salmon roast vegetarian "
            "dessert ingredients menu substitute starter flour",
        ),
        (
            "travel flights hotels destinations trip vacation",
            "visit trip itinerary visa flight airport hotel stay tourists pack hiking train beach city "
            "country terminal offsite",
        ),
        (
            "sql data analysis spreadsheets spreadsheet dashboards analytics",
            "query table rows join pandas excel chart pivot vlookup columns duplicates metric report "
            "warehouse schema postgresql",
        ),
        (
            "deployment deploy kubernetes ci cd pipelines infrastructure cloud devops",
            "pod container docker helm terraform jenkins build deploy rollback cluster aws server "
            "logs nodes autoscaler github actions staging",
        ),
        (
            "security vulnerabilities vulnerability encryption authentication threat",
            "attack hacker leaked keys password hash sql injection csrf xss jwt token vpn phishing "
            "ransomware breach exploit certificate sha mfa",
        ),
        (
            "machine learning models model training evaluation ml ai",
            "neural network overfitting accuracy classifier dataset fine-tuning learning rate loss "
            "dropout cnn rnn gradient features auc recommendation",
        ),
        (
            "translating translation languages language translate",
            "translate say spanish french german japanese korean portuguese italian arabic hebrew "
            "english mean word localize",
        ),
        (
            "summarizing summary summarization documents articles notes meeting",
            "summarize summary tl;dr gist recap key takeaways main points shorten condense minutes bullet points brief",
        ),
        (
            "school subjects students science history geography tutoring teaching",
            "explain why how when who history science biology physics chemistry war empire river "
            "planet earth sun lesson class student teacher",
        ),
    )
)


def cue_words(tag_text_stems: frozenset[str]) -> str:
    """The cue words of every concept a tag's own words trigger, as one string."""
    return " ".join(cues for triggers, cues in CONCEPTS if triggers & tag_text_stems)
