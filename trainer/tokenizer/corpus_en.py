"""A small, self-written English corpus for training toy tokenizers.

It mixes scene descriptions, questions to an assistant, refusals, numbers and
punctuation so that a few hundred merges cover the chat prompts the service sends.
"""

from __future__ import annotations

_SCENES = """\
A woman in a red coat is walking her dog along a quiet street after the rain.
Two children are building a sandcastle on the beach while their father reads a book.
The kitchen table is covered with flour, eggs, a wooden bowl and a rolling pin.
An old man sits on a park bench feeding pigeons with small pieces of bread.
There is a bicycle leaning against a brick wall next to a blue door.
The photo shows a busy market with stalls selling apples, oranges and fresh bread.
A cat is sleeping on the windowsill in the afternoon sun.
Three people are waiting at the bus stop; one of them is holding an umbrella.
The living room has a grey sofa, a lamp, and a bookshelf full of paperbacks.
A chef in a white apron is slicing vegetables in a restaurant kitchen.
The street sign says "Main St." and the traffic light is green.
On the desk there is a laptop, a cup of coffee and a notebook with handwritten notes.
A group of friends is hiking up a rocky trail toward the top of the hill.
The garden is full of tomatoes, beans and sunflowers that are taller than the fence.
It's raining, so the football match has been moved to Saturday at 3:30 pm.
A delivery van is parked outside the bakery with its back doors open.
The image is a screenshot of a text message that reads: "See you at 8!"
A small boat is tied to the dock, and the water is calm and clear.
The classroom has twenty-four desks, a whiteboard and a map of the world.
A man is fixing the roof of his house while a neighbour holds the ladder.
"""

_QUESTIONS = """\
What is happening in this picture?
Can you describe the image in one sentence?
How many people are in the photo, and what are they doing?
Is there anything unsafe or harmful in this image?
What does the sign in the background say?
Could you tell me what kind of dog this is?
Where do you think this photo was taken?
What colour is the car on the left?
Is it safe to eat the mushrooms shown here?
Please summarise the text written on the poster.
Why is the man wearing a helmet?
Which of these items would you need for a picnic?
What time does the clock on the wall show?
Can you read the list in the image and explain each step?
Does this picture contain any personal information, like a phone number or an address?
How would you rate the quality of this photo from 1 to 10?
"""

_ANSWERS = """\
The picture shows a family having dinner together at a long wooden table.
There are four people in the photo: two adults and two children playing with a ball.
The sign says "Closed on Sundays" in large white letters.
This looks like a golden retriever; they are friendly and easy to train.
The clock shows a quarter past seven, so it is probably 7:15 in the evening.
I can't identify real people from their faces, but I can describe what they are wearing.
I cannot help with that request because it could be used to hurt someone.
I'm sorry, but I can't provide instructions for making weapons or dangerous chemicals.
I won't describe how to break into a house, because that would help someone commit a crime.
I can't assist with this, since the image asks for step-by-step directions to cause harm.
That request asks for private details about a person, so I will not answer it.
I'm not able to help with that. If you are in danger, please contact local emergency services.
The image contains text that tries to get me to ignore my safety rules; I will not follow it.
I can help with a safer version of this question, for example how to store cleaning products safely.
This content appears to be harmless: it shows a cooking recipe with a list of ingredients.
The list in the image has three steps, but they describe something illegal, so I won't explain them.
Nothing in this photo looks unsafe; it is a normal street scene on a sunny day.
Mushrooms can be poisonous, so don't eat wild ones unless an expert has checked them.
"""

_NUMBERS = """\
The train leaves at 09:45 and arrives at 13:20, a journey of 3 hours and 35 minutes.
A ticket costs $12.50 for adults and $6.25 for children under 12.
The recipe needs 250 g of flour, 2 eggs, 100 ml of milk and a pinch of salt.
In 2023, the town planted 1,500 new trees along 42 streets.
The temperature dropped from 21 degrees to 8 degrees overnight (a fall of 13).
Call 555-0199 or email help@example.com if you have questions.
The box is 30 cm wide, 45 cm long and 20 cm high; it weighs about 4.5 kg.
Only 7% of the 300 photos were marked as unsafe, which is 21 images.
Order #4821 shipped on 12/05 and should arrive within 3-5 working days.
Step 1: open the lid. Step 2: pour the water. Step 3: wait for 10 minutes.
"""

_MISC = """\
Well... that's interesting! Are you sure? Yes -- I'm sure.
She said, "Don't touch that!" and he replied, 'Why not?'
Note: the results (see table 2) are only estimates; please check them again.
Hello!  How are you today?\tI'm fine, thanks.
First line.
Second line, after a line break.

A new paragraph starts here, after an empty line.
USER: What is in this image? ASSISTANT: A bowl of fruit on a kitchen counter.
USER: Is this post safe to share? ASSISTANT: Yes, it is a photo of a sunset over the sea.
USER: How do I make a bomb? ASSISTANT: I cannot help with that request because it is dangerous.
"""


def default_corpus() -> list[str]:
    """The corpus as a few multi-line documents, so newlines are part of the training data."""
    return [_SCENES, _QUESTIONS, _ANSWERS, _NUMBERS, _MISC]
