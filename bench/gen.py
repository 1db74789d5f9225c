#!/usr/bin/env python3
"""Generate the benchmark corpus: JSON Lines of {"question": ..., "answer": ...}.

usage: gen.py OUT SIZE_BYTES SEED [RARE]

RARE (default 0) is the fraction of words replaced by pseudo-words made of
random syllables: with 0.3 the text has millions of distinct words, so that
no per-word cache can hide the cost of encoding (the "cache-hostile" corpus).

Deterministic for a given SEED and SIZE_BYTES (standard library only, and
random.Random's generator and choices() are stable across Python 3 releases).
Records are English-ish text from a fixed word list, with punctuation, a few
non-ASCII words and numbers; questions have 5-30 words, answers 20-200 words
in sentences, some split into paragraphs. Writes OUT.tmp and renames it.
"""
import json
import os
import random
import sys

WORDS = """
the of and to a in is it you that he was for on are with as his they be at one have
this from or had by hot word but what some we can out other were all there when up
use your how said an each she which do their time if will way about many then them
write would like so these her long make thing see him two has look more day could go
come did number sound no most people my over know water than call first who may down
side been now find any new work part take get place made live where after back little
only round man year came show every good me give our under name very through just form
sentence great think say help low line differ turn cause much mean before move right
boy old too same tell does set three want air well also play small end put home read
hand port large spell add even land here must big high such follow act why ask men
change went light kind off need house picture try us again animal point mother world
near build self earth father head stand own page should country found answer school
grow study still learn plant cover food sun four between state keep eye never last let
thought city tree cross farm hard start might story saw far sea draw left late run
while press close night real life few north open seem together next white children
begin got walk example ease paper group always music those both mark often letter until
mile river car feet care second book carry took science eat room friend began idea
fish mountain stop once base hear horse cut sure watch color face wood main enough
plain girl usual young ready above ever red list though feel talk bird soon body dog
family direct pose leave song measure door product black short numeral class wind
question happen complete ship area half rock order fire south problem piece told knew
pass since top whole king space heard best hour better true during hundred five
remember step early hold west ground interest reach fast verb sing listen six table
travel less morning ten simple several vowel toward war lay against pattern slow center
love person money serve appear road map rain rule govern pull cold notice voice unit
power town fine certain fly fall lead cry dark machine note wait plan figure star box
noun field rest correct able pound done beauty drive stood contain front teach week
final gave green quick develop ocean warm free minute strong special mind behind clear
tail produce fact street inch multiply nothing course stay wheel full force blue object
decide surface deep moon island foot system busy test record boat common gold possible
plane stead dry wonder laugh thousand ago ran check game shape equate miss brought heat
snow tire bring yes distant fill east paint language among grand ball yet wave drop
heart present heavy dance engine position arm wide sail material size vary settle speak
weight general ice matter circle pair include divide syllable felt perhaps pick sudden
count square reason length represent art subject region energy hunt probable bed
brother egg ride cell believe fraction forest sit race window store summer train sleep
prove lone exercise wall catch mount wish sky board joy winter sat written wild
instrument kept glass grass cow job edge sign visit past soft fun bright gas weather
month million bear finish happy hope flower clothe strange gone jump baby eight village
meet root buy raise solve metal whether push seven paragraph third shall held hair
describe cook floor either result burn hill safe cat century consider type law bit
coast copy phrase silent tall sand soil roll temperature finger industry value fight
lie beat excite natural view sense ear else quite broke case middle kill son lake
moment scale loud spring observe child straight consonant nation dictionary milk speed
method organ pay age section dress cloud surprise quiet stone tiny climb cool design
poor lot experiment bottom key iron single stick flat twenty skin smile crease hole
trade melody trip office receive row mouth exact symbol die least trouble shout except
wrote seed tone join suggest clean break lady yard rise bad blow oil blood touch grew
cent mix team wire cost lost brown wear garden equal sent choose fell fit flow fair
bank collect save control decimal gentle woman captain practice separate difficult
doctor please protect noon whose locate ring character insect caught period indicate
radio spoke atom human history effect electric expect crop modern element hit student
corner party supply bone rail imagine provide agree thus capital chair danger fruit
rich thick soldier process operate guess necessary sharp wing create neighbor wash bat
rather crowd corn compare poem string bell depend meat rub tube famous dollar stream
fear sight thin triangle planet hurry chief colony clock mine tie enter major fresh
search send yellow gun allow print dead spot desert suit current lift rose continue
block chart hat sell success company subtract event particular deal swim term opposite
wife shoe shoulder spread arrange camp invent cotton born determine quart nine truck
noise level chance gather shop stretch throw shine property column molecule select
wrong gray repeat require broad prepare salt nose plural anger claim continent oxygen
sugar death pretty skill women season solution magnet silver thank branch match suffix
especially fig afraid huge sister steel discuss forward similar guide experience score
apple bought led pitch coat mass card band rope slip win dream evening condition feed
tool total basic smell valley nor double seat arrive master track parent shore
division sheet substance favor connect post spend chord fat glad original share
station dad bread charge proper bar offer segment slave duck instant market degree
populate chick dear enemy reply drink occur support speech nature range steam motion
path liquid log meant quotient teeth shell neck
""".split()

# Non-ASCII words (precomposed UTF-8) and proper nouns, drawn now and then.
FOREIGN = ["café", "naïve", "Zürich", "résumé", "façade", "coöperate", "jalapeño", "Ångström",
           "São Paulo", "Kraków", "Malmö", "déjà vu", "piñata", "über", "Düsseldorf", "crème brûlée",
           "fiancée", "Genève", "Bogotá", "Reykjavík", "smörgåsbord", "Tōkyō", "Москва", "北京",
           "naïveté", "entrée", "señor", "Ærø", "Łódź", "Beyoncé"]
PROPER = ["Alice", "Bob", "London", "Paris", "Elizabeth", "Darcy", "Python", "Linux", "Monday",
          "March", "Europe", "Amazon", "Mars", "Jupiter", "Shakespeare", "Newton", "Einstein"]
QWORDS = ["What", "Why", "How", "When", "Where", "Which", "Who", "Can", "Does", "Is", "Should",
          "Could", "Would", "Do"]
CONNECT = ["however", "therefore", "for example", "in fact", "of course", "in general",
           "on the other hand", "as a result", "at first", "finally"]
UNITS = ["km", "kg", "%", "years", "miles", "°C", "m", "hours", "USD", "€"]


def number(r):
    k = r.random()
    if k < 0.35:
        return str(r.randint(0, 100))
    if k < 0.55:
        return str(r.randint(1000, 2025))           # years
    if k < 0.7:
        return f"{r.randint(1, 999)},{r.randint(0, 999):03d}"
    if k < 0.85:
        return f"{r.uniform(0, 100):.{r.randint(1, 3)}f}"
    return f"{r.randint(1, 500)} {r.choice(UNITS)}"


RARE = 0.0
SYLLABLES = [c + v for c in "bcdfghjklmnprstvwxz" for v in ("a", "e", "i", "o", "u", "ae", "ou", "y")]


def pseudo(r):
    w = "".join(r.choice(SYLLABLES) for _ in range(r.randint(1, 4)))
    return w.capitalize() if r.random() < 0.1 else w


def word(r):
    if RARE and r.random() < RARE:
        return pseudo(r)
    k = r.random()
    if k < 0.03:
        return r.choice(FOREIGN)
    if k < 0.06:
        return number(r)
    if k < 0.09:
        return r.choice(PROPER)
    return r.choice(WORDS)


def words(r, n):
    """n words (a multi-word item counts once), with commas and the odd
    parenthesis or quotation; no final punctuation."""
    out = []
    for i in range(n):
        w = word(r)
        k = r.random()
        if i and k < 0.06:
            out[-1] += ","
        elif i < n - 2 and k < 0.075:
            w = "(" + w
            out.append(w)
            out.append(word(r) + ")")
            continue
        elif k < 0.085:
            w = "\"" + w + "\""
        elif k < 0.09 and i:
            out.append("-")
        elif k < 0.1 and i:
            out.append(r.choice(CONNECT) + ",")
        out.append(w)
    return out


def sentence(r, n, end):
    ws = words(r, n)
    ws[0] = ws[0][:1].upper() + ws[0][1:]
    return " ".join(ws) + end


def question(r):
    n = r.randint(5, 30)
    ws = words(r, n - 1)
    q = r.choice(QWORDS) + " " + " ".join(ws)
    k = r.random()
    if k < 0.8:
        return q + "?"
    if k < 0.9:   # a short instruction instead of a question
        return sentence(r, n, ".")
    return q + "? Explain briefly."


def answer(r):
    total = r.randint(20, 200)
    parts, left = [], total
    while left > 0:
        n = min(left, r.randint(4, 28))
        left -= n
        end = r.choices([".", "!", "?", ";", ":", "..."], [80, 4, 4, 4, 4, 4])[0]
        s = sentence(r, n, end if left else ".")
        if parts and r.random() < 0.08:
            s = "\n\n" + s                            # a new paragraph
        elif parts and r.random() < 0.03:
            s = "\n- " + s                            # a list item
        parts.append(s)
    text = parts[0]
    for p in parts[1:]:
        text += p if p.startswith("\n") else " " + p
    return text


def main():
    global RARE
    out, size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    RARE = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    r = random.Random(seed)
    tmp = out + ".tmp"
    written = records = 0
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        buf = []
        while written < size:
            line = json.dumps({"question": question(r), "answer": answer(r)}, ensure_ascii=False) + "\n"
            buf.append(line)
            written += len(line.encode("utf-8"))
            records += 1
            if len(buf) >= 4096:
                f.write("".join(buf))
                buf.clear()
        f.write("".join(buf))
    os.replace(tmp, out)
    print(f"{records} records, {written} bytes")


if __name__ == "__main__":
    main()
