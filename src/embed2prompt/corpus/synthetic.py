"""Synthetic prompts: text like what users invert (questions, instructions, requests),
written by the local generator, since no package ships such data.

SmolLM2-135M follows a pattern better than an instruction: asked to "write a question
about cooking" it mostly talks about questions ("I'd like a question about cooking to be
answered in one sentence only"; 14 of 40 ended with a question mark, 30 asked for
one); shown four examples in a list and asked for the next item it writes one ("What
does a healthy diet include?", "List some benefits of using a digital wallet."; every
one of 60 asked for a question ended with one), at the same ~0.6 s a prompt on 2 cores
(BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Iterator

from embed2prompt.corpus.held_out import is_evaluation_text
from embed2prompt.generators.local import LocalGenerator

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
# Each kind with four examples of it, written for this list (the topics differ from theirs).
EXAMPLES = {
    "question": (
        "How do I make my sourdough starter more active?",
        "What is the difference between a Roth IRA and a traditional IRA?",
        "Why does my Python script run out of memory when reading a large CSV file?",
        "Can you explain how vaccines train the immune system?",
    ),
    "instruction": (
        "Write a short cover letter for a junior data analyst position.",
        "Summarize the main causes of the First World War in three sentences.",
        "Translate 'where is the train station' into Spanish.",
        "Give me a weekly workout plan for a beginner with no equipment.",
    ),
    "request": (
        "I have a flight at 7 am and my hotel is an hour from the airport; when should I leave?",
        "My tomato plants have yellow leaves at the bottom, what am I doing wrong?",
        "We are three friends planning a weekend in Lisbon on a small budget; any ideas?",
        "My manager keeps scheduling meetings at lunch; how do I bring it up politely?",
    ),
    "statement": (
        "The new library downtown is open until midnight on weekdays.",
        "Electric cars are cheaper to run than petrol cars in most of Europe.",
        "Our team switched from weekly to daily stand-up meetings last month.",
        "Honey never spoils if it is kept in a sealed jar.",
    ),
}


def few_shot_text(kind: str, topic: str) -> str:
    """The list the generator continues: examples of ``kind``, then a line for ``topic``."""
    examples = "\n".join(f"- {example}" for example in EXAMPLES[kind])
    return (
        f"Examples of {kind}s people send to an AI assistant:\n{examples}\n"
        f"{'An' if kind[0] in 'aeiou' else 'A'} {kind} about {topic}:\n-"
    )


def synthetic_prompts(count: int, *, generator: LocalGenerator, seed: int = 0) -> Iterator[str]:
    """Up to ``count`` one-line prompts, of each kind in turn, over the topics. A
    generation that is empty, copies an example, or is a text of an evaluation set (the
    generator does write some: "What are the benefits of meditation?") is skipped: those
    must stay out of any training data."""
    kinds = list(EXAMPLES)
    copies = {example for examples in EXAMPLES.values() for example in examples}
    for number in range(count):
        kind = kinds[number % len(kinds)]
        topic = TOPICS[(number // len(kinds)) % len(TOPICS)]
        text = generator.continue_text(
            few_shot_text(kind, topic),
            max_tokens=48,
            temperature=0.8,
            seed=seed + number,
            stop=["\n"],
        ).strip('"')
        if text and text not in copies and not is_evaluation_text(text):
            yield text
